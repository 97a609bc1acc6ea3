"""Teacher features of the model's *source* domain, for the adversarial method's domain critic: read from
the model's training cache when it is there, else computed on phantoms of each source's modality."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from preprocessing.cache import CachedCase
from preprocessing.transform import prepare_slices

from ..errors import ConfigurationError
from ..inference.model import TrainedModel
from ..log import get_logger
from .target import even_rows, stacked_inputs

logger = get_logger(__name__)
SOURCES = ("auto", "cache", "phantoms")


def aligned_sources(model: TrainedModel, modality: str) -> list[str]:
    """The model's sources to align the target with: those of the target's modality when there are any
    (a model trained on CT and MR aligns an MR scan with its MR sources, not with a CT/MR mixture), else
    all of them."""
    same = sorted(name for name, plans in model.plans.items() if plans.modality == modality)
    return same or sorted(model.plans)


def cached_source_features(
    model: TrainedModel, sources: list[str], preprocessed: Path, max_slices: int
) -> torch.Tensor | None:
    """View 0 of the features cached for the training cases of ``sources`` (``max_slices`` evenly spaced
    slices per case), or None when a case's cache is missing (then nothing is read)."""
    fold = model.config.get("fold") or {}
    folders = []
    for source, cases in (fold.get("train") or {}).items():
        if source not in sources:
            continue
        plans = model.plans[source]
        for case in cases:
            folder = preprocessed / source / plans.data_identifier() / case
            if not (folder / "features.npy").is_file():
                return None
            folders.append(folder)
    if not folders:
        return None
    chunks = []
    for folder in folders:
        features = CachedCase(folder).features[0]  # (Z, C, h, w) feature_dtype: the unaugmented view
        rows = even_rows(features.shape[0], max_slices)
        chunks.append(torch.from_numpy(np.asarray(features[rows], np.float32)))
    logger.info("source features: %d cached training cases under %s", len(folders), preprocessed)
    return torch.cat(chunks)


def phantom_source_features(
    model: TrainedModel, sources: list[str], cases_per_source: int, max_slices: int, seed: int
) -> torch.Tensor:
    """Teacher features of domain-randomised phantoms (:mod:`liverwild.phantoms.randomized`), made for
    each of ``sources`` with that source's modality and normalisation."""
    from ..phantoms import generate_case
    from ..phantoms.randomized import case_domain

    device = next(model.net.parameters()).device
    chunks = []
    for k, plans in enumerate(model.plans[name] for name in sources):
        for case in range(cases_per_source):
            domain = case_domain(seed + 1000 * k, plans.modality, case, max_slices=max_slices)
            image, _, _ = generate_case(domain, seed=seed + 1000 * k, case=case)
            slices, _, _ = prepare_slices(image.array, image.geometry, plans)
            rows = even_rows(slices.shape[0], max_slices)
            _, _, features = stacked_inputs(model, slices, rows, device, 16)
            chunks.append(features)
    logger.info("source features: %d phantoms per source (%s)", cases_per_source, ", ".join(sources))
    return torch.cat(chunks)


def source_features(
    model: TrainedModel,
    kind: str = "auto",
    modality: str = "CT",
    preprocessed=None,
    cases_per_source: int = 2,
    max_slices: int = 32,
    seed: int = 0,
) -> tuple[torch.Tensor, str]:
    """``(features (N, C, h, w), where they came from)`` of the sources :func:`aligned_sources` picks for a
    target of ``modality``. ``kind``: ``cache`` (the training cache under
    ``preprocessed`` or ``$LW_preprocessed``; an error when it is not complete), ``phantoms``, or ``auto``
    (the cache when complete, else phantoms)."""
    if kind not in SOURCES:
        raise ConfigurationError(f"unknown source {kind!r}: use {', '.join(SOURCES)}")
    if model.backbone is None:
        raise ConfigurationError("source features need a model with a teacher")
    sources = aligned_sources(model, modality)
    if kind != "phantoms":
        root = preprocessed or os.environ.get("LW_preprocessed")
        cached = cached_source_features(model, sources, Path(root), max_slices) if root else None
        if cached is not None:
            return cached, f"cache {root} ({', '.join(sources)})"
        if kind == "cache":
            raise ConfigurationError(
                f"--source cache: the training cache of model {model.folder} is not complete under "
                f"{root or '(no --preprocessed, no $LW_preprocessed)'}; "
                "give --preprocessed DIR or use --source phantoms"
            )
    features = phantom_source_features(model, sources, cases_per_source, max_slices, seed)  # teacher: stacked_inputs
    return features, f"phantoms ({cases_per_source} per source of {', '.join(sources)}, seed {seed})"
