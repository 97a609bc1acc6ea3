"""Converters for the public liver datasets, as distributed, into liverwild raw datasets."""

from __future__ import annotations

from .base import ConversionReport, Converter, run_conversion
from .chaos import CHAOS
from .ircadb import IRCADb
from .nifti import AMOS, BTCV, AbdomenCT1K, LiTS, MSDLiver, NNUNet

DEFAULT_NAMES = {
    "btcv": "BTCV",
    "chaos-ct": "CHAOS_CT",
    "chaos-mr": "CHAOS_MR",
    "ircadb": "IRCADb",
    "lits": "LiTS",
    "msd-liver": "MSD_Liver",
    "amos": "AMOS",
    "act1k": "AbdomenCT1K",
    "nnunet": None,
}
KINDS = tuple(DEFAULT_NAMES)


def make_converters(kind: str, sequence: str = "T2SPIR", liver_label=(1,), amos_modalities=("CT", "MR")) -> list:
    """(converter, name suffix) pairs for a kind; AMOS gives one per modality."""
    if kind == "btcv":
        return [(BTCV(), "")]
    if kind == "chaos-ct":
        return [(CHAOS("CT"), "")]
    if kind == "chaos-mr":
        suffix = "" if sequence == "T2SPIR" else "_" + sequence.replace("T1DUAL_", "T1")
        return [(CHAOS("MR", sequence), suffix)]
    if kind == "ircadb":
        return [(IRCADb(), "")]
    if kind == "lits":
        return [(LiTS(), "")]
    if kind == "msd-liver":
        return [(MSDLiver(), "")]
    if kind == "amos":
        return [(AMOS(m), f"_{m}") for m in amos_modalities]
    if kind == "act1k":
        return [(AbdomenCT1K(), "")]
    if kind == "nnunet":
        return [(NNUNet(liver_label), "")]
    raise KeyError(f"unknown dataset kind {kind!r}; known: {', '.join(KINDS)}")


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
        kind: the dataset's kind (``KINDS``: btcv, lits, msd-liver, chaos, ircadb, amos, act1k, nnunet).
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

    base = name or DEFAULT_NAMES[kind] or Path(src).name
    return [
        run_conversion(conv, src, raw_root, base + suffix, workers=workers, overwrite=overwrite, progress=progress)
        for conv, suffix in make_converters(kind, sequence, liver_label, amos_modalities)
    ]


__all__ = [
    "Converter",
    "ConversionReport",
    "run_conversion",
    "convert",
    "make_converters",
    "KINDS",
    "DEFAULT_NAMES",
    "BTCV",
    "CHAOS",
    "IRCADb",
    "LiTS",
    "MSDLiver",
    "AMOS",
    "AbdomenCT1K",
    "NNUNet",
]
