"""The optional int8 teacher (CPU): linear layers quantised, features close to float32, refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from liverwild.backbones import FrozenBackbone
from liverwild.backbones.quantization import quantize_teacher_int8
from liverwild.errors import ConfigurationError


def test_int8_teacher_quantises_every_linear_layer_and_keeps_the_features():
    torch.manual_seed(0)
    teacher = FrozenBackbone("vit_tiny_patch16_224", "random")
    slices = torch.randn(4, 1, 224, 224)
    reference = teacher(slices)
    quantize_teacher_int8(teacher)
    assert not any(type(m) is nn.Linear for m in teacher.model.modules())
    quantized = [
        m for m in teacher.model.modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__
    ]
    assert len(quantized) >= 4 * 12  # qkv, proj, fc1, fc2 in each of the 12 blocks
    features = teacher(slices)
    assert features.shape == reference.shape and features.dtype == torch.float32
    cosine = nn.functional.cosine_similarity(features.flatten(1), reference.flatten(1)).min()
    assert cosine > 0.99


def test_int8_teacher_refuses_a_teacher_without_linear_layers():
    teacher = FrozenBackbone("imagenet-effnet-lite0", "random")
    with pytest.raises(ConfigurationError, match="this teacher has none: run without --int8-teacher"):
        quantize_teacher_int8(teacher)


def test_predict_with_int8_teacher_writes_masks_and_says_so(phantom_study, trained_model, tmp_path):
    from liverwild.inference import predict

    inputs = phantom_study / "raw" / "PhantomT2MR" / "imagesTr"
    report = predict(
        inputs, tmp_path / "int8", model=trained_model["output"], device="cpu", progress=False, int8_teacher=True
    )
    assert report["n_ok"] == 5 and report["model"]["int8_teacher"] is True
    # the int8 teacher's masks are the float teacher's, up to a few boundary voxels
    floating = predict(inputs, tmp_path / "float", model=trained_model["output"], device="cpu", progress=False)
    assert floating["model"]["int8_teacher"] is False
    from liverwild.io import read_label

    for scan in report["scans"]:
        a = read_label(tmp_path / "int8" / f"{scan['name']}.nii.gz").array > 0
        b = read_label(tmp_path / "float" / f"{scan['name']}.nii.gz").array > 0
        assert a.shape == b.shape and (a != b).mean() < 0.01  # voxels that differ, over the whole scan
        assert abs(scan["liver_ml"] - next(f for f in floating["scans"] if f["name"] == scan["name"])["liver_ml"]) <= (
            0.1 * max(scan["liver_ml"], 1.0)
        )
