"""``adapt_model``: a trained model + a folder of the user's unlabelled scans → an adapted model folder that
``lw_predict -m`` takes, with provenance (source model, the scans' content digests, method, settings)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path, write_json_atomic
from ..checkpoints import load_checkpoint
from ..device import configure_cpu_threads, describe_device, resolve_device
from ..errors import ConfigurationError
from ..hashing import file_sha256
from ..inference.model import TrainedModel, resolve_model_dir
from ..log import get_logger
from ..revision import provenance_fields
from .forward import held_out_measures
from .methods import AdaptationSettings, get_method
from .source import source_features
from .target import load_adaptation_data

logger = get_logger(__name__)
AREA_CHANGE_WARNING = 0.3  # a larger change of the predicted liver area on the adaptation scans is flagged


def check_output(output: Path, model_dir: Path, scans: Path) -> None:
    """The output folder must be new (or empty) and neither the source model nor inside the scans."""
    output, model_dir, scans = output.resolve(), model_dir.resolve(), Path(scans).resolve()
    if output == model_dir:
        raise ConfigurationError(f"{output}: the adapted model must go to another folder than its source model")
    if output.is_dir() and any(output.iterdir()):
        raise ConfigurationError(f"{output}: exists and is not empty; give a new folder for the adapted model")
    if output.is_file():
        raise ConfigurationError(f"{output}: is a file; give a new folder for the adapted model")
    if scans == output:
        raise ConfigurationError(f"{output}: is the scans folder; give another folder for the adapted model")


def adapt_model(
    model,
    scans,
    output,
    *,
    settings: AdaptationSettings | None = None,
    given: set | None = None,
    modality: str = "auto",
    device="auto",
    threads: int | None = None,
    preprocessed=None,
    trainer: str | None = None,
    results=None,
    backbone_weights=None,
    checkpoint: str = "best",
    command: str | None = None,
) -> dict:
    """Adapt ``model`` (a folder, a fold under ``results``, or ``'default'``) to the scans under ``scans`` and
    write the adapted model to ``output``. ``given``: the settings the user set (the others are the
    method's defaults), checked against what the method reads. Returns the provenance written."""
    settings = settings or AdaptationSettings()
    method = get_method(settings.method)
    method.check_settings(set(given or ()))
    if preprocessed is not None and "source" not in method.reads:
        raise ConfigurationError(f"--preprocessed is read by --method adversarial only, not by {method.name}")
    if modality not in ("auto", "CT", "MR"):
        raise ConfigurationError(f"--modality {modality}: use auto, CT or MR")
    start = time.perf_counter()
    device = resolve_device(device)
    if device.type == "cpu":
        configure_cpu_threads(threads)
    model_dir = resolve_model_dir(model, results, trainer)
    output = Path(output)
    check_output(output, model_dir, Path(scans))
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)
    trained = TrainedModel(model_dir, checkpoint=checkpoint, device=device, backbone_weights=backbone_weights)
    if trained.adaptation:
        raise ConfigurationError(
            f"{model_dir}: already adapted (to {trained.adaptation['modality']}, {trained.adaptation['method']}); "
            f"adapt its source model {trained.adaptation['source_model']} instead"
        )
    method.check_model(trained)
    data = load_adaptation_data(
        trained, scans, modality=modality, max_slices=settings.max_slices, batch_size=settings.batch_size
    )
    target_modality = data.scans[0]["modality"]
    extra: dict = {}
    origin = None
    if method.name == "adversarial":
        extra["source_features"], origin = source_features(
            trained, settings.source, target_modality, preprocessed, seed=settings.seed, max_slices=settings.max_slices
        )
    logger.info(
        f"adapting {model_dir} to {len(data.scans)} {target_modality} scans ({len(data)} slices): {method.name}"
    )
    t = time.perf_counter()
    trained.net.eval()
    before = held_out_measures(trained.net, data, settings.batch_size, device)
    report = method.adapt(trained, data, settings, device, **extra)
    trained.net.eval()
    after = held_out_measures(trained.net, data, settings.batch_size, device)
    adapt_seconds = time.perf_counter() - t
    report["all_scans"] = {"before": before, "after": after}
    change = (after["liver_pixels"] - before["liver_pixels"]) / max(before["liver_pixels"], 1)
    logger.info(
        f"on the {len(data)} adaptation slices: predicted liver area {change:+.0%}, "
        f"mean pixel entropy {before['entropy']:.4f} → {after['entropy']:.4f}"
    )
    if abs(change) > AREA_CHANGE_WARNING:
        logger.warning(
            f"adaptation changed the predicted liver area on these scans by {change:+.0%}: compare the adapted "
            f"model's masks with the source model's before using it (documentation/adaptation.md, Measured)"
        )
    record = {
        "method": method.name,
        "modality": target_modality,
        "source_model": str(model_dir),
        "source_checkpoint_sha256": file_sha256(trained.checkpoint),
        "scans": data.scans,
        "settings": {
            **asdict(settings),
            "steps": settings.steps or method.default_steps,
            "lr": settings.lr or method.default_lr,
        },
        "source_features": origin,
    }
    write_adapted(trained, output, record, report, start, adapt_seconds, device, command)
    return json.loads((output / "provenance.json").read_text(encoding="utf-8"))


def write_adapted(
    trained: TrainedModel, output: Path, record: dict, report: dict, start, adapt_seconds, device, command
):
    """``checkpoint_best.pth`` (the source checkpoint's network and plans with the adapted weights and the
    ``adaptation`` record), ``config.json``, ``adaptation_report.json`` and, last, ``provenance.json``."""
    state = load_checkpoint(trained.checkpoint)
    keep = ("trainer", "network_config", "plans", "config", "epochs_done", "best_dice", "configuration", "classes")
    slim = {k: state[k] for k in keep if k in state}
    slim["network"] = {k: v.detach().cpu() for k, v in trained.net.state_dict().items()}
    slim["adaptation"] = {k: record[k] for k in ("method", "modality", "source_model", "source_checkpoint_sha256")}
    output.mkdir(parents=True, exist_ok=True)
    with atomic_path(output / "checkpoint_best.pth", ".pth") as tmp:
        torch.save(slim, tmp)
    config = json.loads((trained.folder / "config.json").read_text(encoding="utf-8"))
    write_json_atomic(output / "config.json", {**config, "adaptation": slim["adaptation"]})
    software = provenance_fields(torch=torch.__version__)
    write_json_atomic(output / "adaptation_report.json", {**report, **software})
    source_provenance = trained.folder / "provenance.json"
    provenance = {
        **record,
        "source_provenance": json.loads(source_provenance.read_text(encoding="utf-8"))
        if source_provenance.is_file()
        else None,
        "stop": report.get("stop"),
        "adaptation_slices": report["all_scans"],
        "command": command or "adapt_model",
        **software,
        "device": describe_device(device),
        "torch_threads": torch.get_num_threads(),
        "adapt_seconds": round(adapt_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "checkpoint_sha256": file_sha256(output / "checkpoint_best.pth"),
    }
    write_json_atomic(output / "provenance.json", provenance)
    logger.info(f"adapted model → {output} ({provenance['total_seconds']:.0f} s; {report.get('stop') or 'done'})")
