"""Domain-specific BatchNorm (MS-Net) and unpaired CT/MR knowledge distillation (Dou et al.): the BatchNorm
routing and the distillation loss on inputs with known answers, then both trainers on phantom folds,
through prediction."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import preprocess_phantoms

from liverwild.errors import ConfigurationError
from liverwild.inference import predict
from liverwild.inference.model import TrainedModel
from liverwild.io import read_image
from liverwild.losses.alignment import modality_distillation_loss
from liverwild.nets import DomainBatchNorm2d, DomainNormUNet2d, DualNormUNet2d, build_network
from liverwild.phantoms import write_phantoms
from liverwild.training import get_trainer, train_fold
from preprocessing.cache import CachedCase
from preprocessing.splits import get_fold

# ---- domain-specific BatchNorm ------------------------------------------------------------------


def test_domain_batchnorm_routes_each_sample_to_its_domain_statistics():
    torch.manual_seed(0)
    domains = torch.tensor([2, 0, 2, 1, 0, 2])
    offsets = torch.tensor([-3.0, 0.5, 4.0])[domains].view(-1, 1, 1, 1)
    x = 2 * torch.randn(6, 2, 5, 5) + offsets
    bn = DomainBatchNorm2d(2, n_domains=4).train()
    bn.branch = domains
    out = bn(x)
    momentum, eps = 0.1, 1e-5
    xs, ds = x.numpy().astype(np.float64), domains.numpy()
    for d in range(3):
        part = xs[ds == d]
        mean, var = part.mean(axis=(0, 2, 3)), part.var(axis=(0, 2, 3))
        n = part.shape[0] * part.shape[2] * part.shape[3]
        norm = bn.norms[d]
        assert np.allclose(norm.running_mean.numpy(), momentum * mean, atol=1e-5)
        assert np.allclose(norm.running_var.numpy(), (1 - momentum) + momentum * var * n / (n - 1), atol=1e-5)
        expected = (part - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)
        assert np.allclose(out[domains == d].detach().numpy(), expected, atol=1e-4), "in the batch's order"
    unused = bn.norms[3]
    assert int(unused.num_batches_tracked) == 0 and torch.equal(unused.running_mean, torch.zeros(2))
    (out * torch.randn_like(out)).sum().backward()
    assert unused.weight.grad is None and bn.norms[1].weight.grad is not None

    bn.eval()
    with torch.no_grad():
        routed = bn(x)
        for d in range(3):  # evaluation: each sample with its own domain's running statistics
            bn.branch = d
            assert torch.allclose(routed[domains == d], bn(x)[domains == d], atol=1e-6)


def _fit_branch_statistics(net, branch, data, steps=30):
    net.train()
    net.set_branch(branch)
    with torch.no_grad():
        for _ in range(steps):
            net(data())


def test_domain_norm_unet_picks_the_nearest_of_three_branches_and_rebuilds_from_its_config():
    torch.manual_seed(0)
    net = DomainNormUNet2d(base_channels=4, depth=2, n_domains=3)
    styles = [
        lambda: 0.3 * torch.randn(4, 1, 32, 32) - 2,
        lambda: torch.randn(4, 1, 32, 32),
        lambda: 4 * torch.randn(4, 1, 32, 32) + 6,
    ]
    for branch, style in enumerate(styles):
        _fit_branch_statistics(net, branch, style)
    net.eval()
    net.set_branch("auto")
    x = torch.cat([styles[b]()[:1] for b in (2, 0, 1, 2)])
    with torch.no_grad():
        out = net(x)
        assert net.last_choice.tolist() == [2, 0, 1, 2]
        for row, branch in enumerate((2, 0, 1, 2)):
            net.set_branch(branch)
            assert torch.allclose(out[row], net(x)[row], atol=1e-6)
        net.set_branch("auto")
        config = json.loads(json.dumps(net.config))
        assert config["architecture"] == "domain_norm_unet2d" and config["n_domains"] == 3
        rebuilt = build_network(config)
        rebuilt.load_state_dict(net.state_dict())
        rebuilt.eval()
        assert torch.equal(rebuilt(x), out)
    dual = DualNormUNet2d(base_channels=4, depth=2)  # the two-branch case keeps its saved form
    assert dual.config["norm"] == "dual" and "n_domains" not in dual.config
    assert type(build_network(dual.config)) is DualNormUNet2d


# ---- knowledge distillation between modalities -------------------------------------------------


def _numpy_kd(logits, labels, modalities, temperature):
    """L_kd written out with numpy: per class, the softmax of the class-mean two-channel logits
    [−l/2, l/2] / T per modality, symmetric KL, mean over the classes both modalities have."""
    terms = []
    for c in (0, 1):
        probabilities = []
        for m in (0, 1):
            pixels = logits[modalities == m][labels[modalities == m] == c]
            if pixels.size == 0:
                break
            z = np.array([-pixels.mean() / 2, pixels.mean() / 2]) / temperature
            probabilities.append(np.exp(z) / np.exp(z).sum())
        else:
            p, q = probabilities
            terms.append(np.sum(p * np.log(p / q)) + np.sum(q * np.log(q / p)))
    return float(np.mean(terms)) if terms else 0.0


def test_modality_distillation_loss_on_a_hand_computed_case():
    # CT (modality 0): liver logits 1 and 4 ln 3 − 1 → mean 2 ln 3; background logits 0.5 and −0.5 → mean 0.
    # MR (modality 1): liver logit −2 ln 3; background logits 0.
    # T = 2: p_liver^CT = softmax([0, ln 3]) = [1/4, 3/4], p_liver^MR = [3/4, 1/4],
    # KL(p‖q) = KL(q‖p) = ¾ ln 3 − ¼ ln 3 = ½ ln 3; p_background equal (½, ½) in both → 0.
    # L_kd = (1/2) (ln 3 + 0) = ½ ln 3.
    ln3 = math.log(3)
    logits = torch.tensor([[[[1.0, 4 * ln3 - 1]]], [[[0.5, -0.5]]], [[[-2 * ln3, 0.0]]]])
    labels = torch.tensor([[[[1.0, 1.0]]], [[[0.0, 0.0]]], [[[1.0, 0.0]]]])
    modalities = torch.tensor([0, 0, 1])
    assert float(modality_distillation_loss(logits, labels, modalities, 2.0)) == pytest.approx(ln3 / 2, rel=1e-6)
    assert float(modality_distillation_loss(logits, labels, 1 - modalities, 2.0)) == pytest.approx(ln3 / 2, rel=1e-6)
    # no background in MR's part: that class is skipped, C = 1 → ln 3
    only_liver = labels.clone()
    only_liver[2] = 1.0
    logits_liver = logits.clone()
    logits_liver[2] = -2 * ln3
    assert float(modality_distillation_loss(logits_liver, only_liver, modalities, 2.0)) == pytest.approx(ln3, rel=1e-6)
    # the same input in both modalities: no divergence
    same = torch.cat([logits[:2], logits[:2]])
    assert float(modality_distillation_loss(same, torch.cat([labels[:2]] * 2), torch.tensor([0, 0, 1, 1]))) == 0.0


def test_modality_distillation_loss_matches_an_independent_computation():
    rng = np.random.default_rng(3)
    for temperature in (1.0, 2.0, 5.0):
        logits = rng.normal(0, 3, size=(6, 1, 4, 5)).astype(np.float32)
        labels = (rng.random((6, 1, 4, 5)) < 0.3).astype(np.float32)
        modalities = np.array([0, 1, 1, 0, 1, 0])
        got = modality_distillation_loss(
            torch.from_numpy(logits), torch.from_numpy(labels), torch.from_numpy(modalities), temperature
        )
        assert float(got) == pytest.approx(_numpy_kd(logits, labels, modalities, temperature), rel=1e-4)
    logits_t = torch.randn(4, 1, 3, 3, requires_grad=True)
    loss = modality_distillation_loss(logits_t, (torch.rand(4, 1, 3, 3) < 0.5).float(), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    assert logits_t.grad is not None and torch.isfinite(logits_t.grad).all()


# ---- the trainers on phantom folds -------------------------------------------------------------

DOMAINS = ["PhantomNativeCT", "PhantomPortalCT", "PhantomT2MR"]
CT_MR_FOLD = "loo_PhantomPortalCT"  # sources PhantomNativeCT (CT) and PhantomT2MR (MR)
CT_ONLY_FOLD = "loo_PhantomT2MR"  # sources PhantomNativeCT and PhantomPortalCT
LEARNED = 0.3  # validation Dice a trained model passes and an untrained one (a full mask: 0.05) does not


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory):
    root = tmp_path_factory.mktemp("multisite")
    write_phantoms(root / "raw", DOMAINS, n_cases=3, scale=0.3, n_slices=6, progress=False)
    preprocess_phantoms(root, DOMAINS)
    return root


def quick(trainer: str, **changes):
    """The trainer's own configuration, test-sized: 5 epochs of 8 steps of 2 slices per branch, a U-Net
    of depth 3 with 8 channels."""
    small = dict(epochs=5, steps_per_epoch=8, batch_size=2, lr=2e-2, unet_channels=8, unet_depth=3, val_batch_size=8)
    return get_trainer(trainer).default_config().updated(**{**small, "seed": 0, **changes})


def make_trainer(preprocessed, results, trainer: str, fold_name: str, fold: dict | None = None):
    fold = fold or get_fold(preprocessed / "pre" / "splits.json", fold_name)
    return get_trainer(trainer)(fold_name, fold, preprocessed / "pre", results, quick(trainer), "cpu")


def test_branches_and_balanced_batches_per_site_or_per_modality(preprocessed, tmp_path):
    splits = preprocessed / "pre" / "splits.json"
    parts = [get_fold(splits, f) for f in (CT_ONLY_FOLD, CT_MR_FOLD)]
    pooled = {  # every phantom domain a source: two CT sites and one MR site
        "sources": DOMAINS,
        **{key: {s: p[key][s] for p in parts for s in p["sources"]} for key in ("train", "val")},
    }
    expected = {"MultiSiteNormTrainer": (DOMAINS, [0, 1, 2]), "MultiModalKDTrainer": (["CT", "MR"], [0, 0, 1])}
    for name, (branches, of_source) in expected.items():
        trainer = make_trainer(preprocessed, tmp_path, name, "pooled", pooled)
        trainer.build_datasets()
        assert trainer.branches == branches and trainer.branch_of_source.tolist() == of_source
        batches = list(trainer.batch_sampler(0))
        assert len(batches) == 8
        for batch in batches:
            per_branch = np.bincount(trainer.item_branches[batch], minlength=len(branches))
            assert per_branch.tolist() == [2] * len(branches), "batch_size slices of every branch"
        assert trainer.build_network().n_domains == len(branches)


def test_multimodal_kd_refuses_a_fold_of_one_modality(preprocessed, tmp_path):
    with pytest.raises(ConfigurationError, match=r"CT and MR sources.*PhantomNativeCT \(CT\), PhantomPortalCT \(CT\)"):
        make_trainer(preprocessed, tmp_path, "MultiModalKDTrainer", CT_ONLY_FOLD)
    make_trainer(preprocessed, tmp_path, "MultiSiteNormTrainer", CT_ONLY_FOLD)  # sites need not differ in modality


@pytest.mark.slow  # about 35 s for both trainers
@pytest.mark.parametrize(
    "trainer, terms, branches",
    [
        (
            "MultiSiteNormTrainer",
            ["loss_seg_PhantomNativeCT", "loss_seg_PhantomT2MR"],
            ["PhantomNativeCT", "PhantomT2MR"],
        ),
        ("MultiModalKDTrainer", ["loss_seg_CT", "loss_seg_MR", "loss_kd"], ["CT", "MR"]),
    ],
)
def test_trainer_learns_and_predicts_through_lw_predict(preprocessed, tmp_path, trainer, terms, branches):
    untrained = make_trainer(preprocessed, tmp_path / "untrained", trainer, CT_MR_FOLD)
    untrained.initialize()
    assert untrained.validate()["val_dice"] < LEARNED
    summary = train_fold(
        CT_MR_FOLD,
        trainer,
        preprocessed=str(preprocessed / "pre"),
        results=str(tmp_path / "results"),
        device="cpu",
        config=quick(trainer),
        progress=False,
    )
    assert summary["best_val_dice"] > LEARNED
    out = Path(summary["output"])
    log = pd.read_csv(out / "log.csv")
    assert set(terms) <= set(log.columns) and np.isfinite(log[terms]).all().all()
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["network"]["architecture"] == "domain_norm_unet2d" and config["network"]["n_domains"] == 2
    assert config["normalisation_branches"] == branches

    # the loaded model keeps, per slice, the output of the branch it chose (which branch depends on how well the
    # running statistics have caught up with the weights: unreliable after a few fast steps: documentation/baselines.md)
    model = TrainedModel(out)
    case = CachedCase(next((preprocessed / "pre" / "PhantomT2MR").glob("*/phantomt2mr_000")))
    x = torch.from_numpy(np.asarray(case.slices[0], np.float32))[:, None]
    with torch.no_grad():
        chosen = model.net(x)
        choice = model.net.last_choice
        for branch in range(2):
            model.net.set_branch(branch)
            assert torch.equal(model.net(x)[choice == branch], chosen[choice == branch])
        model.net.set_branch("auto")

    report = predict(
        preprocessed / "raw" / "PhantomPortalCT" / "imagesTr",
        tmp_path / "pred",
        model=out,
        device="cpu",
        progress=False,
    )
    assert report["n_ok"] == 3 and report["model"]["network"] == "domain_norm_unet2d"
    scan = report["scans"][0]
    assert scan["seconds"]["backbone"] == 0.0, "an image baseline needs no teacher at inference"
    mask, image = read_image(scan["output"]), read_image(scan["input"])
    assert mask.geometry.differences(image.geometry) == [] and set(np.unique(mask.array)) <= {0, 1}
