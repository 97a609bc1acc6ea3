"""Converters for the public liver datasets, as distributed, into liverwild raw datasets."""

from __future__ import annotations

from .base import ConversionReport, Converter, run_conversion
from .chaos import CHAOS
from .ircadb import IRCADb
from .nifti import AMOS, BTCV, AbdomenCT1K, LiTS, MSDLiver, NNUNet
from .registry import CONVERTERS, ConverterKind, get_converter_kind, register_converter

KINDS = tuple(CONVERTERS)  # registration order: the converter modules above


def make_converters(kind: str, **options) -> list:
    """``(converter, name suffix)`` pairs for a registered kind (AMOS gives one per modality)."""
    return get_converter_kind(kind).converters(**options)


def convert(
    kind: str,
    src,
    raw_root,
    *,
    name: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    sequence: str = "T2SPIR",
    liver_label=(1,),
    amos_modalities=("CT", "MR"),
    progress: bool = True,
) -> list:
    """Convert a public dataset unpacked at ``src`` into liverwild raw datasets — what ``lw_convert`` runs.

    Args:
        kind: a registered dataset kind (``CONVERTERS``: btcv, lits, msd-liver, chaos-ct, chaos-mr, ircadb,
            amos, act1k, nnunet, and any you register).
        src: the folder the dataset was unpacked into, in its distributed layout.
        raw_root: the raw datasets folder (``$LW_raw``).
        name: output dataset name (default per kind, e.g. ``BTCV``; AMOS adds ``_CT``/``_MR``).
        workers: cases converted in parallel processes.
        overwrite: convert again cases already written.
        sequence: CHAOS MR sequence (``T2SPIR``, ``T1DUAL_in``, ``T1DUAL_out``).
        liver_label: the liver value(s) of an nnU-Net dataset.
        amos_modalities: which AMOS modalities to write.
        progress: show a progress bar.

    Returns:
        One :class:`ConversionReport` per written dataset (converted, skipped and failed cases, and the
        dataset verifier's findings).

    Example::

        from liverwild.datasets.conversion import convert
        [report] = convert("btcv", "/downloads/RawData", "/data/raw")
        print(report.summary())
    """
    from pathlib import Path

    entry = get_converter_kind(kind)
    base = name or entry.default_name or Path(src).name
    converters = entry.converters(sequence=sequence, liver_label=liver_label, amos_modalities=amos_modalities)
    return [
        run_conversion(conv, src, raw_root, base + suffix, workers=workers, overwrite=overwrite, progress=progress)
        for conv, suffix in converters
    ]


__all__ = [
    "Converter",
    "ConversionReport",
    "run_conversion",
    "convert",
    "make_converters",
    "KINDS",
    "CONVERTERS",
    "ConverterKind",
    "register_converter",
    "get_converter_kind",
    "BTCV",
    "CHAOS",
    "IRCADb",
    "LiTS",
    "MSDLiver",
    "AMOS",
    "AbdomenCT1K",
    "NNUNet",
]
