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
    name: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    sequence: str = "T2SPIR",
    liver_label=(1,),
    amos_modalities=("CT", "MR"),
    progress: bool = True,
    log=print,
) -> list:
    """Convert a public dataset unpacked at ``src`` into ``raw_root``; one report per written dataset."""
    from pathlib import Path

    base = name or DEFAULT_NAMES[kind] or Path(src).name
    return [
        run_conversion(conv, src, raw_root, base + suffix, workers, overwrite, progress=progress, log=log)
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
