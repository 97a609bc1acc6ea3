"""torch.distributed on CPU (gloo, 2 processes): the global-batch collectives in-process, and the three
commands under torchrun (marked slow) against one process doing the same work."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import PHANTOM_DOMAINS, TRAINED_FOLD, small

from liverwild.distributed import DistributedContext, GlobalBatchNorm2d, global_sum
from liverwild.inference.driver import merge_reports
from liverwild.losses import tversky_loss
from liverwild.training.batches import ShardedBatches

WEIGHT_TOLERANCE = 1e-5  # max |Δw| after 4 steps of DDP vs one process (measured 2e-7): rounding only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- in-process pieces ------------------------------------------------------------------------------


def test_sharded_batches_split_every_global_batch_into_equal_contiguous_shares():
    batches = [[0, 1, 2, 3], [7, 6, 5, 4]]
    shares = [list(ShardedBatches(batches, DistributedContext(rank, 2))) for rank in (0, 1)]
    assert shares == [[[0, 1], [7, 6]], [[2, 3], [5, 4]]]
    assert len(ShardedBatches(batches, DistributedContext(1, 2))) == 2
    with pytest.raises(Exception, match="does not split"):
        list(ShardedBatches([[0, 1, 2]], DistributedContext(0, 2)))


def test_context_shards_cases_round_robin_without_overlap():
    cases = [f"case{i}" for i in range(7)]
    shares = [DistributedContext(rank, 3).shard(cases) for rank in range(3)]
    assert shares[0] == ["case0", "case3", "case6"]
    assert sorted(sum(shares, [])) == cases


def test_merged_report_holds_every_part_once():
    parts = [
        {"scans": [{"input": "b"}], "n_ok": 1, "n_failed": 0, "seconds_total": 2.0, "device": "cuda:0"},
        {"scans": [{"input": "a"}, {"input": "c"}], "n_ok": 1, "n_failed": 1, "seconds_total": 3.0, "device": "cuda:1"},
    ]
    merged = merge_reports(parts)
    assert [s["input"] for s in merged["scans"]] == ["a", "b", "c"]
    assert (merged["n_ok"], merged["n_failed"], merged["seconds_total"]) == (2, 1, 3.0)
    assert merged["devices"] == ["cuda:0", "cuda:1"] and merged["num_parts"] == 2


def _global_batch_worker(rank: int, port: int, out: str):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        x = torch.randn(4, 3, 5, 5) * 3 + 1
        target = (torch.rand(4, 1, 5, 5) > 0.5).float()
        logits = torch.randn(4, 1, 5, 5)
        norm = GlobalBatchNorm2d(3)
        with torch.no_grad():
            norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        mine = slice(2 * rank, 2 * rank + 2)
        xs, ls = x[mine].clone().requires_grad_(), logits[mine].clone().requires_grad_()
        loss = (norm(xs) * torch.arange(1.0, 4.0).view(1, 3, 1, 1)).square().mean()
        loss = loss + tversky_loss(ls, target[mine], over_ranks=True)
        loss.backward()
        dist.all_reduce(norm.weight.grad)  # what DDP does (sum, then / world size)
        total = global_sum(torch.tensor([float(rank + 1)]))
        torch.save(
            {
                "x_grad": xs.grad,
                "logit_grad": ls.grad,
                "weight_grad": norm.weight.grad / 2,
                "running_mean": norm.running_mean,
                "running_var": norm.running_var,
                "total": total,
            },
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_global_batchnorm_and_tversky_counts_equal_one_process_on_the_whole_batch(tmp_path):
    """Two gloo processes with half a batch each give the gradients, BatchNorm statistics and Tversky
    loss of nn.BatchNorm2d and tversky_loss over the whole batch in one process."""
    mp.spawn(_global_batch_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5) * 3 + 1
    target = (torch.rand(4, 1, 5, 5) > 0.5).float()
    logits = torch.randn(4, 1, 5, 5)
    norm = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    x.requires_grad_()
    logits.requires_grad_()
    # per-process means of equal halves, averaged by DDP = the mean over the whole batch
    loss = (norm(x) * torch.arange(1.0, 4.0).view(1, 3, 1, 1)).square().mean() + tversky_loss(logits, target)
    loss.backward()
    # each rank's input gradient is that of its half of the whole-batch loss, times the world size
    # (DDP divides parameter gradients by it, inputs are not averaged)
    torch.testing.assert_close(torch.cat([r["x_grad"] for r in ranks]) / 2, x.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(torch.cat([r["logit_grad"] for r in ranks]) / 2, logits.grad, rtol=1e-4, atol=1e-7)
    for r in ranks:
        torch.testing.assert_close(r["weight_grad"], norm.weight.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(r["running_mean"], norm.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(r["running_var"], norm.running_var, rtol=1e-5, atol=1e-6)
        assert float(r["total"]) == 3.0


# ---- the commands under torchrun (2 CPU processes) --------------------------------------------------


def torchrun(module: str, *args, nproc: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    env = {**os.environ, "LW_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [*command, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def final_weights(results: Path) -> dict:
    (checkpoint,) = results.glob(f"{TRAINED_FOLD}/*/checkpoint_final.pth")
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["network"]


@pytest.mark.slow
def test_ddp_training_resumes_and_matches_one_process_with_the_global_batch(phantom_study, tmp_path):
    """2 processes × batch 2, stopped after epoch 1 and resumed, end where 1 process × batch 4 ends."""
    from liverwild.training import train_fold

    settings = ["head_dropout=0", "decoder_dropout=0", "lr=0.001", "val_batch_size=16"]
    common = ["--preprocessed", phantom_study / "pre", "--device", "cpu", "--steps-per-epoch", 2, "--no-progress"]
    ddp = ["liverwild.cli.train", TRAINED_FOLD, "--results", tmp_path / "ddp", "--batch-size", 2, *common]
    torchrun(*ddp, "--epochs", 1, "--set", *settings)
    first = final_weights(tmp_path / "ddp")
    out = torchrun(*ddp, "--epochs", 2, "--set", *settings)
    assert "resuming after epoch 0" in out.stdout + out.stderr
    assert out.stdout.count("done: best validation Dice") == 1  # one summary per job
    config = small(epochs=2, steps_per_epoch=2, batch_size=4, head_dropout=0.0, decoder_dropout=0.0, lr=1e-3)
    train_fold(
        TRAINED_FOLD,
        preprocessed=str(phantom_study / "pre"),
        results=str(tmp_path / "single"),
        device="cpu",
        config=config.updated(val_batch_size=16),
        progress=False,
    )
    ddp_weights, single_weights = final_weights(tmp_path / "ddp"), final_weights(tmp_path / "single")
    moved = max(float((first[k].float() - ddp_weights[k].float()).abs().max()) for k in first)
    assert moved > 10 * WEIGHT_TOLERANCE  # the resumed epoch trained
    for key, value in single_weights.items():
        difference = float((value.float() - ddp_weights[key].float()).abs().max())
        assert difference <= WEIGHT_TOLERANCE, f"{key}: {difference}"
    (folder,) = (tmp_path / "ddp").glob(f"{TRAINED_FOLD}/*")
    log = folder / "log.csv"
    assert len(log.read_text(encoding="utf-8").strip().splitlines()) == 3  # header + 2 epochs, rank 0 only
    # the run folders say how they ran
    job = json.loads((folder / "config.json").read_text(encoding="utf-8"))["job"]
    assert job == {"processes": 2, "backend": "gloo", "launcher": "torchrun", "global_batch_size": 4}
    assert "2 processes (gloo): 2 items per process, global batch 4" in out.stdout + out.stderr
    (single,) = (tmp_path / "single").glob(f"{TRAINED_FOLD}/*")
    job = json.loads((single / "config.json").read_text(encoding="utf-8"))["job"]
    assert job == {"processes": 1, "backend": None, "launcher": "single process", "global_batch_size": 4}


@pytest.mark.slow
def test_sharded_preprocessing_writes_the_files_of_one_process(phantom_study, tmp_path):
    out = torchrun(
        "liverwild.cli.plan_and_preprocess",
        "-d",
        *PHANTOM_DOMAINS,
        "--raw",
        phantom_study / "raw",
        "--preprocessed",
        tmp_path / "pre",
        "--random-backbone",
        "--backbone",
        "vit_tiny_patch16_224",
        "--views",
        1,
        "--workers",
        0,
        "--no-progress",
    )
    for domain in PHANTOM_DOMAINS:  # rank 0 reports each dataset once, over both ranks' shares
        assert (out.stdout + out.stderr).count(f"{domain}: 5 processed, 0 unchanged, 0 failed") == 1
        assert f"rank 0/2 caches 3 cases of {domain}" in out.stdout + out.stderr
    reference = phantom_study / "pre"
    assert (tmp_path / "pre" / "splits.json").read_text(encoding="utf-8") == (reference / "splits.json").read_text(
        encoding="utf-8"
    )
    compared = 0
    for domain in PHANTOM_DOMAINS:
        (cache,) = (reference / domain).glob("lwdata_*")
        other = tmp_path / "pre" / domain / cache.name
        assert (other / "plans.json").read_text(encoding="utf-8") == (cache / "plans.json").read_text(encoding="utf-8")
        for case in sorted(p for p in cache.iterdir() if p.is_dir()):
            for array in case.glob("*.npy"):
                np.testing.assert_array_equal(np.load(other / case.name / array.name), np.load(array))
                compared += 1
        assert not list(other.rglob("*.tmp*"))
    assert compared >= 4 * 5 * len(PHANTOM_DOMAINS)


@pytest.mark.slow
def test_sharded_prediction_writes_each_scan_once_and_as_one_process(phantom_study, trained_model, tmp_path):
    from liverwild.inference import predict

    inputs = phantom_study / "raw" / "PhantomT2MR" / "imagesTr"
    model = trained_model["output"]
    single = predict(inputs, tmp_path / "single", model=model, device="cpu", progress=False)
    torchrun("liverwild.cli.predict", "-i", inputs, "-o", tmp_path / "ddp", "-m", model, "--device", "cpu")
    names = sorted(p.name for p in (tmp_path / "single").glob("*.nii.gz"))
    assert single["n_ok"] == len(names) == 5
    assert sorted(p.name for p in (tmp_path / "ddp").glob("*.nii.gz")) == names
    for name in names:
        assert (tmp_path / "ddp" / name).read_bytes() == (tmp_path / "single" / name).read_bytes()
    merged = json.loads((tmp_path / "ddp" / "prediction_report.json").read_text(encoding="utf-8"))
    assert merged["n_ok"] == 5 and merged["num_parts"] == 2
    assert merged["job"] == {"processes": 2, "backend": "gloo", "launcher": "torchrun"}
    assert sorted(s["name"] for s in merged["scans"]) == [n.removesuffix(".nii.gz") for n in names]
    parts = [
        predict(inputs, tmp_path / "parts", model=model, device="cpu", progress=False, part=k, num_parts=2)
        for k in (0, 1)
    ]
    written = [s["name"] for part in parts for s in part["scans"]]
    assert sorted(written) == sorted(s["name"] for s in merged["scans"])  # each scan in exactly one part
    assert (tmp_path / "parts" / "prediction_report.part1of2.json").is_file()
