"""The user's unlabelled scans as adaptation data: canonical normalised slices and, for a model with a
teacher, its frozen features — computed once, so that every adaptation step runs the trainable head and
decoder only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from planning.content import content_digest
from planning.plans import Plans
from preprocessing.features import slice_batches
from preprocessing.transform import prepare_slices

from ..device import autocast
from ..errors import ConfigurationError, LiverwildError
from ..inference.base import modality_of
from ..inference.discovery import find_scans
from ..inference.model import TrainedModel
from ..io import check_not_constant, read_image
from ..log import get_logger

logger = get_logger(__name__)


@dataclass
class AdaptationData:
    """Slices of several scans, on the CPU, in float32.

    ``inputs`` ``(N, C, 224, 224)``: what the model's first stage takes (the teacher's input slices, with
    their neighbours for the ``neighbours`` context); ``centre`` ``(N, 1, 224, 224)``: the slices the
    decoder's skip connection sees; ``features`` ``(N, C_f, h, w)`` the teacher's maps, or None for an
    image model (a U-Net segments ``centre`` itself); ``scan_index`` ``(N,)``: which scan each slice is
    from."""

    inputs: torch.Tensor
    centre: torch.Tensor
    features: torch.Tensor | None
    scan_index: np.ndarray
    scans: list = field(default_factory=list)  # [{name, file, digest, slices, modality}]

    def __len__(self) -> int:
        return int(self.centre.shape[0])

    def subset(self, rows: np.ndarray) -> AdaptationData:
        rows_t = torch.from_numpy(np.asarray(rows, np.int64))
        return AdaptationData(
            self.inputs[rows_t],
            self.centre[rows_t],
            None if self.features is None else self.features[rows_t],
            self.scan_index[rows],
            self.scans,
        )

    def split_scans(self, held_out_share: float, seed: int) -> tuple[AdaptationData, AdaptationData]:
        """``(adapt, held_out)``: whole scans held out (at least one, at most all but one) when there are
        several; with one scan, every fifth slice. The held-out part only steers the stopping rules."""
        rng = np.random.default_rng(seed)
        n_scans = len(self.scans)
        if n_scans >= 2:
            n_held = min(n_scans - 1, max(1, int(round(held_out_share * n_scans))))
            held = rng.permutation(n_scans)[:n_held]
            mask = np.isin(self.scan_index, held)
        else:
            mask = np.zeros(len(self), bool)
            mask[2::5] = True
        return self.subset(np.flatnonzero(~mask)), self.subset(np.flatnonzero(mask))


def even_rows(n: int, keep: int) -> np.ndarray:
    """``keep`` evenly spaced indices of ``range(n)`` (all of them when ``n ≤ keep``)."""
    if keep <= 0 or n <= keep:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, keep)).astype(np.int64))


def slices_of_scan(model: TrainedModel, path, modality: str, max_slices: int) -> tuple:
    """``(slices (Z', H, W) float32, scan record)`` of one scan: read, checked, normalised as
    :class:`~liverwild.inference.slices.SlicePredictor` does, ``max_slices`` evenly spaced slices."""
    volume = read_image(path)
    check_not_constant(volume)
    found = modality_of(volume)
    if modality != "auto" and found != modality:
        logger.info("%s: looks like %s, treated as %s (--modality)", path, found, modality)
    modality = found if modality == "auto" else modality
    record = {"file": str(path), "digest": content_digest(volume.array, volume.geometry), "modality": modality}
    plans = Plans(
        dataset="adaptation",
        modality=modality,
        normalization=model.normalization_for_scan(volume.array, modality),
        slice_size=list(model.slice_size),
    )
    slices, _, _ = prepare_slices(volume.array, volume.geometry, plans)
    return slices, record


def stacked_inputs(model: TrainedModel, slices: np.ndarray, rows: np.ndarray, device, batch_size: int) -> tuple:
    """``(inputs, centre, features or None)`` of rows ``rows`` of one scan's slices (CPU tensors)."""
    inputs, features = [], []
    for start, stop, x in slice_batches(slices, batch_size, torch.device("cpu"), model.context):
        keep = rows[(rows >= start) & (rows < stop)] - start
        if keep.size == 0:
            continue
        x = x[torch.from_numpy(keep)]
        inputs.append(x)
        if model.backbone is not None:
            with torch.inference_mode(), autocast(device, True):
                features.append(model.backbone(x.to(device)).float().cpu())
    stacked = torch.cat(inputs)
    centre = stacked[:, stacked.shape[1] // 2 :][:, :1].contiguous()
    return stacked, centre, torch.cat(features) if features else None


def load_adaptation_data(
    model: TrainedModel, source, *, modality: str = "auto", max_slices: int = 48, batch_size: int = 16, exclude=None
) -> AdaptationData:
    """Every readable scan under ``source`` (a file, a folder, DICOM series) as :class:`AdaptationData`.

    A scan that cannot be read is reported (``FAILED <file>: <reason>``) and left out; none readable, or
    scans of two modalities (adapt to one kind of scan at a time), is an error."""
    scans, rejected = find_scans(source, exclude=exclude)
    for path, reason in rejected:
        logger.warning("FAILED %s: %s", path, reason)
    device = next(model.net.parameters()).device
    parts, records = [], []
    for name, path in scans:
        try:
            slices, record = slices_of_scan(model, path, modality, max_slices)
        except LiverwildError as exc:
            logger.warning("FAILED %s: %s", path, exc)
            continue
        rows = even_rows(slices.shape[0], max_slices)
        parts.append(stacked_inputs(model, slices, rows, device, batch_size))
        records.append({"name": name, **record, "slices": int(rows.size)})
        logger.info("%s: %d slices for adaptation (%s)", name, rows.size, record["modality"])
    if not records:
        raise LiverwildError(f"{source}: no readable scan to adapt to")
    kinds = sorted({r["modality"] for r in records})
    if len(kinds) > 1:
        listing = ", ".join(f"{r['name']} ({r['modality']})" for r in records)
        raise ConfigurationError(
            f"{source}: holds both CT and MR scans ({listing}); adapt to one modality at a time "
            "(one folder per scanner protocol), or pass --modality"
        )
    index = np.concatenate([np.full(p[0].shape[0], i) for i, p in enumerate(parts)])
    features = torch.cat([p[2] for p in parts]) if model.backbone is not None else None
    return AdaptationData(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), features, index, records)
