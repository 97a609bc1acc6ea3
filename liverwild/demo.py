"""The main job on the embedded default: phantoms → verify → plan and preprocess → (train → predict → evaluate).

Stages that this version does not implement yet are listed, not faked.
"""
from __future__ import annotations

import time
from pathlib import Path

from .datasets import verify_dataset
from .phantoms import DOMAINS, write_phantoms

PENDING_STAGES = ("train a leave-one-domain-out fold", "predict the unseen domain", "evaluate")


def _folder_size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def run_demo(workdir, cases: int = 5, scale: float = 1.0, seed: int = 0, quick: bool = False, workers: int = 1,
             slices: int = 16, views: int = 1, backbone_weights=None, device: str = "auto", log=print) -> dict:
    """Run the demo in ``workdir``; returns a summary dict. ``quick`` shrinks everything."""
    from preprocessing.pipeline import plan_and_preprocess
    workdir = Path(workdir)
    raw, pre = workdir / "raw", workdir / "preprocessed"
    if quick:
        cases, scale, slices = min(cases, 3), min(scale, 0.5), min(slices, 8)
    summary = {"workdir": str(workdir), "stages": {}}
    log("liverwild demo — synthetic phantoms, not patients.")
    start = time.perf_counter()
    folders = write_phantoms(raw, list(DOMAINS), cases, seed, scale, slices, workers=workers, progress=False)
    summary["stages"]["phantoms"] = round(time.perf_counter() - start, 2)
    log(f"[1] phantoms: {len(folders)} domains × {cases} cases × {slices} slices in {raw} "
        f"({summary['stages']['phantoms']} s)")
    start = time.perf_counter()
    reports = [verify_dataset(f) for f in folders]
    summary["stages"]["verify"] = round(time.perf_counter() - start, 2)
    for report in reports:
        log(f"[2] verify: {report.summary()}")
    summary["verified"] = all(r.ok for r in reports)
    if backbone_weights is None:
        log("[3] NOTE: no --backbone-weights given: the DINO backbone has RANDOM weights, so features and "
            "any model trained on them are for demonstration only.")
    start = time.perf_counter()
    pp = plan_and_preprocess([f.name for f in folders], raw=str(raw), preprocessed=str(pre),
                             weights=backbone_weights, random_backbone=backbone_weights is None, views=views,
                             device=device, workers=workers, progress=False, log=lambda *a: None)
    summary["stages"]["plan_and_preprocess"] = round(time.perf_counter() - start, 2)
    n_slices = sum(r.slices for r in pp)
    for r in pp:
        log(f"[3] preprocess: {r.summary()}")
    log(f"[3] plan and preprocess: {n_slices} slices × {1 + views} views in "
        f"{summary['stages']['plan_and_preprocess']} s; cache {_folder_size_mb(pre):.0f} MB in {pre}")
    summary["preprocessed_ok"] = not any(r.failed for r in pp)
    summary["pending"] = list(PENDING_STAGES)
    log("Not available yet in this version: " + ", ".join(PENDING_STAGES) + ".")
    return summary
