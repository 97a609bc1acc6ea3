"""The teacher's slice context: the slice alone (the paper) or with its two neighbours (2.5D)."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import preprocess_phantoms, small

from liverwild.backbones import FrozenBackbone, teacher_config
from liverwild.errors import ConfigurationError
from planning.plans import Plans
from planning.sections import Normalization
from preprocessing.features import context_slices

DOMAINS = ["PhantomNativeCT", "PhantomT2MR"]


def test_neighbours_are_the_slices_below_and_above_with_edges_repeated():
    stack = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    centre = context_slices(stack, 0, 4, "slice")
    assert centre.shape == (4, 1, 2, 2)
    np.testing.assert_array_equal(centre[:, 0, 0, 0], [0, 1, 2, 3])
    both = context_slices(stack, 1, 4, "neighbours")
    assert both.shape == (3, 3, 2, 2)
    np.testing.assert_array_equal(both[:, :, 0, 0], [[0, 1, 2], [1, 2, 3], [2, 3, 3]])
    np.testing.assert_array_equal(context_slices(stack, 0, 1, "neighbours")[0, :, 1, 1], [0, 0, 1])
    with pytest.raises(ValueError):
        context_slices(stack, 0, 1, "volume")


def test_context_is_recorded_only_when_chosen_and_changes_the_cache_identity():
    plain = teacher_config("vit_tiny_patch16_224", "random")
    assert "context" not in plain.to_json()  # caches written before the option keep their identifiers
    assert teacher_config("vit_tiny_patch16_224", "random", context="slice") == plain
    both = teacher_config("vit_tiny_patch16_224", "random", context="neighbours")
    assert both.context == "neighbours"
    ids = {
        Plans("d", "CT", Normalization([0.0, 500.0]), slice_size=[224, 224], backbone=b).data_identifier()
        for b in (plain, both)
    }
    assert len(ids) == 2
    with pytest.raises(ConfigurationError, match="slice context 'volume'"):
        teacher_config("vit_tiny_patch16_224", "random", context="volume")


@pytest.fixture(scope="module")
def neighbours_study(tmp_path_factory):
    from liverwild.phantoms import write_phantoms

    root = tmp_path_factory.mktemp("neighbours")
    write_phantoms(root / "raw", DOMAINS, n_cases=3, scale=0.4, n_slices=8, progress=False)
    preprocess_phantoms(root, DOMAINS, views=1, slice_context="neighbours")
    return root


def test_cached_features_are_the_teacher_on_each_slice_with_its_neighbours(neighbours_study):
    from planning.plans import load_plans
    from preprocessing.cache import CachedCase, list_cases

    plans = load_plans(neighbours_study / "pre" / "PhantomNativeCT" / "plans.json")
    assert plans.backbone.context == "neighbours"
    folder = neighbours_study / "pre" / "PhantomNativeCT" / plans.data_identifier()
    case = CachedCase(folder / list_cases(folder)[0])
    slices, features = np.asarray(case.slices, np.float32), np.asarray(case.features, np.float32)
    teacher = FrozenBackbone.from_config(plans.backbone)
    slice_only = FrozenBackbone.from_config(dataclasses.replace(plans.backbone, context=None))
    view = 1  # the augmented view: its neighbours come from the same augmented stack
    z = slices.shape[1]
    for i in (0, z // 2, z - 1):
        below, above = slices[view, max(i - 1, 0)], slices[view, min(i + 1, z - 1)]
        x = torch.from_numpy(np.stack([below, slices[view, i], above])[None])
        expected = teacher(x)[0].numpy()
        np.testing.assert_allclose(features[view, i], expected, atol=2e-2, rtol=1e-2)  # float16 cache
        alone = slice_only(torch.from_numpy(slices[view, i][None, None]))[0].numpy()
        assert np.abs(alone - expected).max() > 0.1  # the neighbours change the features


def test_neighbours_model_predicts_from_each_slice_and_its_neighbours(neighbours_study, tmp_path):
    from liverwild.inference import PredictorOptions, SlicePredictor, TrainedModel
    from liverwild.io import read_image
    from liverwild.training import train_fold
    from preprocessing.transform import prepare_slices

    trained = train_fold(
        "loo_PhantomT2MR",
        preprocessed=str(neighbours_study / "pre"),
        results=str(tmp_path),
        device="cpu",
        config=small(epochs=1, steps_per_epoch=3),
        progress=False,
    )
    model = TrainedModel(trained["output"], device="cpu")
    assert model.context == "neighbours"
    image = sorted((neighbours_study / "raw" / "PhantomT2MR" / "imagesTr").glob("*.nii.gz"))[0]
    volume = read_image(image)
    predictor = SlicePredictor(model, torch.device("cpu"), PredictorOptions(postprocess=False, modality="MR"))
    mask, probs, info, _ = predictor.predict_volume(read_image(image), keep_probabilities=True)
    assert mask.shape == volume.array.shape

    # Independently: each canonical slice with its neighbours through the teacher, the slice alone to the decoder.
    normalization = Normalization.from_json(info["normalization"])
    plans = Plans(dataset="x", modality="MR", normalization=normalization, slice_size=list(model.slice_size))
    slices, _, reorient = prepare_slices(volume.array.astype(np.float32), volume.geometry, plans)
    z = slices.shape[0]
    canonical = reorient.canonical_geometry(volume.geometry).shape
    expected = np.empty(canonical, np.float32)
    for i in range(z):
        x = torch.from_numpy(np.stack([slices[max(i - 1, 0)], slices[i], slices[min(i + 1, z - 1)]])[None]).float()
        logits, _ = model.net(model.backbone(x), x[:, 1:2])
        p = torch.nn.functional.interpolate(torch.sigmoid(logits), size=canonical[1:], mode="bilinear")
        expected[i] = p[0, 0].detach().numpy()
    np.testing.assert_allclose(probs, reorient.from_canonical(expected), atol=1e-4)


def test_online_augmentation_is_refused_with_the_neighbours_context(neighbours_study, tmp_path):
    from liverwild.training import train_fold

    with pytest.raises(ConfigurationError, match="neighbours"):
        train_fold(
            "loo_PhantomT2MR",
            preprocessed=str(neighbours_study / "pre"),
            results=str(tmp_path),
            device="cpu",
            config=small(epochs=1, steps_per_epoch=1, augmentation="online"),
            progress=False,
        )
