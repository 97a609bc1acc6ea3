"""Where the shipped default model lives and what every use of it must say — torch-free and low in the
layers, so that both :mod:`liverwild.default_model` (which builds it) and :mod:`liverwild.inference`
(which loads it) read these from here."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigurationError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"
DISCLAIMER = (
    "liverwild's default model was trained on synthetic phantoms only (no real scan, no real label) "
    "and is not a medical device: check every mask before any use."
)


def default_model_dir() -> Path:
    """The shipped default model folder; a clear error when this installation lacks it."""
    if not (DEFAULT_MODEL_DIR / "checkpoint_best.pth").is_file():
        raise ConfigurationError(
            f"{DEFAULT_MODEL_DIR}: liverwild's default model is missing from this installation; "
            "rebuild it with lw_build_default_model, or pass a trained model with -m"
        )
    return DEFAULT_MODEL_DIR
