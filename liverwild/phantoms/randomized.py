"""Domain-randomised phantoms: every case draws its own scanner, protocol and patient.

The named domains (:mod:`.domains`) stay fixed for the domain-generalisation protocol. The randomised
family is for training the shipped default model: like SynthSeg (Billot et al., MedIA 2023) it samples
appearance instead of fixing it, so that a model cannot rely on any one contrast.

Per case (:func:`sample_domain`):

- **CT**: a random mixture of the native, arterial and portal-venous phases, per-tissue jitter,
  fatty or dense livers, texture strength; HU calibration offset and gain; noise level and
  correlation; streaks; circular reconstruction fields of several padding values.
- **MR**: half of the cases follow a jittered sequence archetype (T2 fat-suppressed, T2, T1 in-phase,
  T1 opposed-phase, T1 post-contrast), so the liver is darker or brighter than spleen, fat and muscle
  depending on the sequence; the other half give every tissue an independent random intensity. Bias
  field, Rician noise, arbitrary gain and storage type.
- **Both**: in-plane spacing, field of view, slice thickness, z coverage (the liver dome may be cut
  off), storage orientation, point-spread blur, motion ghosts, and the patient's size (anatomy
  stretched per axis) on top of the anatomy's own random organs and lesions.

``write_randomized(DIR, "CT", n)`` writes ``DIR/PhantomRandomCT`` as a raw dataset whose
``dataset.json`` records every case's sampled domain.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from .domains import CT_ARTERIAL, CT_NATIVE, CT_PORTAL, LAS, LPS, MR_T2, RAI, RAS, Domain
from .tissues import RENDERED_TISSUES
from .version import GENERATOR_VERSION

FAMILY = {"CT": "PhantomRandomCT", "MR": "PhantomRandomMR"}
LPI = (1, 0, 0, 0, 1, 0, 0, 0, -1)
ORIENTATIONS = (LPS, RAS, RAI, LAS, LPI)

_FLUIDS = ("CSF", "GALLBLADDER", "FLUID")
MR_ARCHETYPES = {  # relative intensities per tissue; unlisted tissues come from T2 fat-suppressed
    "t2_fatsat": dict(MR_T2),
    "t2": {**MR_T2, "FAT": (420, 40), "MARROW": (330, 30), "LIVER": (130, 12), "SPLEEN": (280, 20)},
    "t1_in_phase": {
        **MR_T2,
        "FAT": (520, 40),
        "LIVER": (330, 20),
        "SPLEEN": (240, 20),
        "MUSCLE": (200, 15),
        "KIDNEY_CORTEX": (260, 20),
        "KIDNEY_MEDULLA": (200, 20),
        "LESION": (180, 30),
        "MARROW": (420, 40),
        "BOWEL": (220, 40),
        "LIVER_VESSEL": (120, 20),
        "AORTA": (90, 20),
        "VEIN": (110, 20),
        "HEART": (180, 30),
        "DISC": (200, 20),
        **{f: (70, 10) for f in _FLUIDS},
    },
    "t1_opposed_phase": {
        **MR_T2,
        "FAT": (470, 40),
        "LIVER": (270, 30),
        "SPLEEN": (250, 20),
        "MUSCLE": (180, 15),
        "KIDNEY_CORTEX": (240, 20),
        "KIDNEY_MEDULLA": (180, 20),
        "LESION": (160, 30),
        "MARROW": (250, 40),
        "BOWEL": (200, 40),
        "LIVER_VESSEL": (100, 20),
        "AORTA": (80, 20),
        "VEIN": (90, 20),
        "HEART": (160, 30),
        "DISC": (180, 20),
        **{f: (60, 10) for f in _FLUIDS},
    },
    "t1_post_contrast": {
        **MR_T2,
        "FAT": (90, 15),
        "LIVER": (380, 25),
        "SPLEEN": (420, 30),
        "MUSCLE": (170, 15),
        "KIDNEY_CORTEX": (560, 40),
        "KIDNEY_MEDULLA": (420, 40),
        "LESION": (220, 50),
        "MARROW": (200, 30),
        "BOWEL": (260, 50),
        "LIVER_VESSEL": (600, 40),
        "AORTA": (650, 40),
        "VEIN": (600, 40),
        "HEART": (500, 50),
        "DISC": (150, 20),
        **{f: (50, 10) for f in _FLUIDS},
    },
}
_DARK_IN_MR = ("AIR", "GAS", "LUNG", "TABLE")


_OUTSIDE = ("AIR", "TABLE")
_AIRLIKE = ("GAS", "LUNG")
_DENSE = ("BONE", "MARROW", "CARTILAGE", "ORAL_CONTRAST")
HARD_NEGATIVES = ("STOMACH", "BOWEL", "SPLEEN", "MUSCLE", "PANCREAS", "KIDNEY_CORTEX")
"""Tissues that a hard-negative case renders within ±10 HU (CT) or ±5 % (MR) of the liver."""


def _ct_intensities(rng) -> tuple[dict, str]:
    """Per-tissue (mean, texture) in HU and the contrast's name: a phase mixture, or (a third of the
    cases) every tissue's mean drawn independently, SynthSeg-style; then lesions of either sign and,
    in some cases, hard negatives."""
    weights = rng.dirichlet([0.7, 0.7, 0.7])
    independent = rng.random() < 0.4
    out: dict = {}
    for tissue in RENDERED_TISSUES:
        name = tissue.name
        mean = sum(w * phase[name][0] for w, phase in zip(weights, (CT_NATIVE, CT_ARTERIAL, CT_PORTAL)))
        texture = sum(w * phase[name][1] for w, phase in zip(weights, (CT_NATIVE, CT_ARTERIAL, CT_PORTAL)))
        if independent and name not in _OUTSIDE:
            if name in _AIRLIKE:
                mean = rng.uniform(-1000, -600)
            elif name in _DENSE:
                mean = rng.uniform(150, 1200)
            else:
                mean = rng.uniform(-150, 300)
            texture = max(texture, 4.0)
        elif name not in (*_OUTSIDE, *_AIRLIKE, "BONE"):
            mean += rng.normal(0, 12)
        out[name] = (float(mean), float(texture * rng.uniform(0.5, 2.0)))
    if not independent:
        if rng.random() < 0.2:  # fatty liver
            out["LIVER"] = (float(rng.uniform(-30, 40)), out["LIVER"][1])
        elif rng.random() < 0.1:  # dense liver (iron, amiodarone)
            out["LIVER"] = (float(rng.uniform(80, 130)), out["LIVER"][1])
        liver = out["LIVER"][0]  # lesions darker (most) or brighter (hypervascular) than the liver
        lesion = liver - rng.uniform(15, 60) if rng.random() < 0.7 else liver + rng.uniform(15, 80)
        out["LESION"] = (float(lesion), out["LESION"][1])
    _hard_negatives(rng, out, lambda liver: liver + rng.uniform(-10, 10))
    return out, "ct_random" if independent else "ct_phase_mixture"


def _hard_negatives(rng, out: dict, near) -> None:
    """In 35 % of cases, 1–3 of :data:`HARD_NEGATIVES` take a mean ``near(liver mean)`` (in place)."""
    if rng.random() >= 0.35:
        return
    liver = out["LIVER"][0]
    for name in rng.choice(HARD_NEGATIVES, size=int(rng.integers(1, 4)), replace=False):
        out[str(name)] = (float(near(liver)), out[str(name)][1])


def _mr_intensities(rng) -> tuple[dict, str]:
    if rng.random() < 0.5:
        archetype = str(rng.choice(list(MR_ARCHETYPES)))
        base = MR_ARCHETYPES[archetype]
        out: dict = {}
        for tissue in RENDERED_TISSUES:
            mean, texture = base[tissue.name]
            factor = 1.0 if tissue.name in _DARK_IN_MR else float(rng.lognormal(0, 0.25))
            out[tissue.name] = (float(mean * factor), float(texture * factor * rng.uniform(0.5, 2.0)))
        _hard_negatives(rng, out, lambda liver: liver * rng.uniform(0.95, 1.05))
        return out, archetype
    out = {}
    for tissue in RENDERED_TISSUES:  # SynthSeg-style: any contrast at all
        level = float(rng.uniform(0, 30)) if tissue.name in _DARK_IN_MR else float(rng.uniform(20, 800))
        out[tissue.name] = (level, float(level * rng.uniform(0.02, 0.15)))
    _hard_negatives(rng, out, lambda liver: liver * rng.uniform(0.95, 1.05))
    return out, "random"


def sample_domain(rng: np.random.Generator, modality: str, max_slices: int = 96) -> Domain:
    """One random imaging domain of ``modality`` ('CT' or 'MR'); at most ``max_slices`` slices."""
    if modality == "CT":
        intensities, contrast = _ct_intensities(rng)
        spacing = rng.uniform(1.2, 2.8)
        slice_mm = rng.uniform(1.5, 6.0)
    elif modality == "MR":
        intensities, contrast = _mr_intensities(rng)
        spacing = rng.uniform(1.3, 3.2)
        slice_mm = rng.uniform(3.0, 9.0)
    else:
        raise ValueError(f"modality must be 'CT' or 'MR', got {modality!r}")
    fov = rng.uniform(300, 460)
    z_range = (float(rng.uniform(-480, -170)), float(rng.uniform(-40, 60)))  # from the pelvis up to the lungs
    extent = slice_mm * max_slices
    if z_range[1] - z_range[0] > extent:  # too many slices: a shorter stack that still holds liver
        lo = max(z_range[0], -190 - 0.5 * extent)  # at least half the stack's length of liver region
        hi = min(z_range[1] - extent, -0.5 * extent)
        low = float(rng.uniform(lo, hi)) if hi > lo else float(min(hi, z_range[1] - extent))
        z_range = (low, low + extent)
    body = rng.uniform(0.85, 1.15)
    kwargs: dict = dict(
        fov_mm=float(fov),
        matrix=int(round(fov / spacing)),
        slice_mm=float(slice_mm),
        z_range=z_range,
        direction=ORIENTATIONS[int(rng.integers(len(ORIENTATIONS)))],
        psf_mm=(float(rng.uniform(0.5, 1.2)), float(rng.uniform(0.4, 1.0))),
        noise_corr=float(rng.uniform(0.3, 1.2)),
        ghosting=float(rng.uniform(0.03, 0.15)) if rng.random() < 0.25 else 0.0,
        anatomy_scale=(
            float(body * rng.uniform(0.95, 1.05)),
            float(body * rng.uniform(0.95, 1.05)),
            float(rng.uniform(0.85, 1.15)),
        ),
        extra={"contrast": contrast, "generator_version": GENERATOR_VERSION},
    )
    if modality == "CT":
        kwargs.update(noise=float(rng.uniform(4, 40)), gain=(0.97, 1.03), offset=(-25.0, 25.0), dtype="int16")
        if rng.random() < 0.3:
            kwargs.update(streaks=float(rng.uniform(30, 120)), streak_fraction=float(rng.uniform(0.1, 0.5)))
        if rng.random() < 0.35:
            kwargs.update(circular_fov_value=float(rng.choice([-1024, -2048, -3024])))
    else:
        liver = intensities["LIVER"][0]
        kwargs.update(
            noise=float(rng.uniform(0.02, 0.1) * max(liver, 50.0)),
            gain=(0.3, 4.0),
            bias_field=float(rng.uniform(0.0, 0.6)),
            dtype=str(rng.choice(["uint16", "float32"])),
        )
    return Domain(FAMILY[modality], modality, f"randomised {modality} ({contrast})", intensities, **kwargs)


def domain_summary(domain: Domain) -> dict:
    """The sampled parameters of one case, for dataset.json (JSON-friendly)."""
    d = asdict(domain)
    d["intensities"] = {k: [round(v[0], 1), round(v[1], 1)] for k, v in domain.intensities.items()}
    return {k: v for k, v in d.items() if k not in ("name", "cases")}


def case_domain(seed: int, modality: str, case: int, max_slices: int = 96) -> Domain:
    """The domain of case ``case`` of the randomised family: independent of every other case."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, case, GENERATOR_VERSION, *map(ord, FAMILY[modality])]))
    return sample_domain(rng, modality, max_slices)


def write_randomized(
    out_root, modality: str, n_cases: int, seed: int = 0, max_slices: int = 96, workers: int = 1, progress: bool = True
):
    """Write ``out_root/PhantomRandom<modality>/`` with ``n_cases`` randomised cases; returns the folder."""
    from pathlib import Path

    from tqdm import tqdm

    from ..datasets.format import ORGAN_FOLDER, DatasetInfo, write_dataset_json
    from ..parallel import bounded_imap
    from .generate import LICENCE, SOURCE, _write_case, organ_labels

    folder = Path(out_root) / FAMILY[modality]
    domains = [case_domain(seed, modality, case, max_slices) for case in range(n_cases)]
    jobs = [(domain, folder, seed, case, None, False) for case, domain in enumerate(domains)]
    names = []
    for name, _ in tqdm(
        bounded_imap(_write_case, jobs, workers),
        total=n_cases,
        desc=FAMILY[modality],
        unit="case",
        disable=not progress,
    ):
        names.append(name)
    info = DatasetInfo(
        name=FAMILY[modality],
        modality=modality,
        cases=sorted(names),
        source=SOURCE,
        licence=LICENCE,
        description=f"domain-randomised {modality} phantoms (generator version {GENERATOR_VERSION})",
        extra={
            "phantom": {
                "seed": seed,
                "generator_version": GENERATOR_VERSION,
                "randomised": True,
                "cases": {n: domain_summary(d) for n, d in zip(names, domains)},
            },
            "organ_labels": organ_labels(),
            "organ_label_folder": ORGAN_FOLDER,
        },
    )
    write_dataset_json(folder, info)
    return folder
