"""liverwild's shipped default model: trained on domain-randomised phantoms only, with a teacher that
installs with pip, so that ``lw_predict -i scan -o out`` works with no other step.

It was trained on **synthetic data only** and is **not a medical device**.

:func:`build_default_model` is the whole recipe, from nothing to the model folder: randomised CT and
MR phantoms (:mod:`liverwild.phantoms.randomized`) → plan and preprocess with the teacher
``imagenet-effnet-lite0`` → one pooled fold over both → ``ContrastiveDistillationTrainer`` → a slim
model folder (network weights and plans only, about 1 MB) with ``provenance.json`` (recipe, teacher,
generator version, seed, command, versions, the checkpoint's SHA-256). ``lw_build_default_model``
runs it; the folder shipped in the package is what that command wrote.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .atomic import atomic_path, write_json_atomic
from .checkpoints import load_checkpoint
from .default_recipe import Recipe
from .device import describe_device, resolve_device
from .errors import ConfigurationError, LiverwildError
from .hashing import file_sha256
from .log import get_logger
from .revision import provenance_fields
from .shipped import DEFAULT_MODEL_DIR, DISCLAIMER

logger = get_logger(__name__)
FOLD = "default_all_phantoms"


def export_model(run_folder, output, provenance: dict) -> Path:
    """Write a slim model folder (``checkpoint_best.pth`` with the network and plans only, ``config.json``,
    ``provenance.json`` with the checkpoint's SHA-256) from a training output folder."""
    run_folder, output = Path(run_folder), Path(output)
    state = load_checkpoint(run_folder / "checkpoint_best.pth")
    slim = {
        "trainer": state["trainer"],
        "network": state["network"],
        "network_config": state["network_config"],
        "plans": state["plans"],
        "config": state["config"],
        "epochs_done": state["epochs_done"],
        "best_dice": state["best_dice"],
        **{k: state[k] for k in ("configuration", "classes", "volume_size", "git_revision", "versions") if k in state},
    }
    output.mkdir(parents=True, exist_ok=True)
    with atomic_path(output / "checkpoint_best.pth", ".pth") as tmp:
        torch.save(slim, tmp)
    config = json.loads((run_folder / "config.json").read_text(encoding="utf-8"))
    write_json_atomic(output / "config.json", {**config, "fold_name": "default", "default_model": True})
    write_json_atomic(
        output / "provenance.json", {**provenance, "checkpoint_sha256": file_sha256(output / "checkpoint_best.pth")}
    )
    return output


def export_default_onnx(output) -> Path | None:
    """The ONNX graph of the model in ``output`` (``lw_export --onnx``), so that ``lw_predict`` runs the
    rebuilt default without torch as it ran the shipped one; None, with a warning saying how to export it
    later, where the exporter's packages are missing."""
    from .inference.export import export_onnx

    try:
        return export_onnx(Path(output))
    except LiverwildError as exc:  # packages missing, or onnxruntime disagreeing with torch: torch it is
        logger.warning(f"{output}: no ONNX export ({exc}); lw_predict runs it with torch until lw_export --onnx")
        return None


def build_default_model(
    workdir,
    *,
    output=DEFAULT_MODEL_DIR,
    recipe: Recipe | None = None,
    device="auto",
    workers: int = 1,
    command: str | None = None,
) -> dict:
    """Build the default model from scratch in ``workdir`` and export it to ``output``; returns provenance."""
    from preprocessing.pipeline import plan_and_preprocess
    from preprocessing.splits import add_fold, pooled_fold

    from .backbones import describe_teacher, teacher_config
    from .phantoms.randomized import FAMILY, GENERATOR_VERSION, write_randomized
    from .training import get_trainer, train_fold

    recipe = recipe or Recipe()
    workdir = Path(workdir)
    raw, pre, res = workdir / "raw", workdir / "preprocessed", workdir / "results"
    start = time.perf_counter()
    # the git revision of the code that runs, read before the build's long minutes
    software = provenance_fields(torch=torch.__version__, platform=platform.platform())
    torch.manual_seed(recipe.seed)
    logger.info(f"[1/4] randomised phantoms: {recipe.ct_cases} CT + {recipe.mr_cases} MR cases in {raw}")
    write_randomized(raw, "CT", recipe.ct_cases, recipe.seed, recipe.max_slices, workers, progress=False)
    write_randomized(raw, "MR", recipe.mr_cases, recipe.seed, recipe.max_slices, workers, progress=False)
    names = [FAMILY["CT"], FAMILY["MR"]]
    logger.info(f"[2/4] plan and preprocess with the teacher {recipe.teacher}")
    reports = plan_and_preprocess(
        names,
        raw=str(raw),
        preprocessed=str(pre),
        backbone=recipe.teacher,
        tap=recipe.tap,
        slice_context=recipe.slice_context,
        views=recipe.views,
        device=device,
        workers=workers,
        replan=True,
        progress=False,
    )
    failed = {r.dataset: r.failed for r in reports if r.failed}
    if failed:
        raise ConfigurationError(f"preprocessing failed for {failed}")
    add_fold(pre / "splits.json", FOLD, pooled_fold(_cached_cases(pre, names), recipe.val_per_source, recipe.seed))
    logger.info(f"[3/4] train {FOLD}: {recipe.epochs} epochs × {recipe.steps_per_epoch} steps of {recipe.batch_size}")
    config = (
        get_trainer(recipe.trainer)
        .default_config()
        .updated(
            epochs=recipe.epochs,
            steps_per_epoch=recipe.steps_per_epoch,
            batch_size=recipe.batch_size,
            lr=recipe.lr,
            seed=recipe.seed,
        )
    )
    trained = train_fold(
        FOLD, recipe.trainer, preprocessed=str(pre), results=str(res), device=device, config=config, progress=False
    )
    teacher = teacher_config(recipe.teacher, tap=recipe.tap, context=recipe.slice_context)
    provenance: dict = {
        "description": DISCLAIMER,
        "recipe": asdict(recipe),
        "teacher": describe_teacher(teacher),
        "teacher_config": {k: v for k, v in teacher.to_json().items() if k != "weights"},
        "generator": "liverwild.phantoms.randomized",
        "generator_version": GENERATOR_VERSION,
        "seed": recipe.seed,
        "command": command or "lw_build_default_model",
        "best_val_dice_on_phantoms": round(float(trained["best_val_dice"]), 4),
        **software,
        "device": describe_device(resolve_device(device)),
        "torch_threads": torch.get_num_threads(),
        "build_seconds": round(time.perf_counter() - start, 1),
    }
    export_model(trained["output"], output, provenance)
    export_default_onnx(output)
    logger.info(
        f"[4/4] default model → {output} (validation Dice on held-out phantoms "
        f"{provenance['best_val_dice_on_phantoms']:.3f}, "
        f"{provenance['build_seconds'] / 60:.1f} min)"
    )
    return json.loads((Path(output) / "provenance.json").read_text(encoding="utf-8"))


def _cached_cases(preprocessed: Path, names: list) -> dict:
    from planning.plans import load_plans
    from preprocessing.cache import list_cases

    return {
        n: list_cases(preprocessed / n / load_plans(preprocessed / n / "plans.json").data_identifier()) for n in names
    }


def main_command() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
