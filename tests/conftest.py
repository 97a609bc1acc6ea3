import os
from pathlib import Path

import numpy as np
import pytest

from liverwild.io import Geometry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def real_data_dir():
    """Folder of the real scans (env LW_REAL_DATA, default ../shared/data/real); skips when absent."""
    folder = Path(os.environ.get("LW_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))
    if not (folder / "totalseg_ct" / "image.nii.gz").is_file():
        pytest.skip(f"real scans not found in {folder} (set LW_REAL_DATA)")
    return folder


def asymmetric_volume(shape=(7, 9, 11), seed=0):
    """A volume whose every axis flip or permutation gives a different array."""
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 1000, size=shape).astype(np.int16)


def geometry_for(shape, spacing=(0.7, 0.9, 2.5), origin=(-120.5, 33.0, 411.25), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    nz, ny, nx = shape
    return Geometry((nx, ny, nz), tuple(map(float, spacing)), tuple(map(float, origin)), tuple(map(float, direction)))


SIGNED_PERMUTATIONS = []
for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
    for signs in ((1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1), (-1, -1, 1), (-1, -1, -1)):
        d = np.zeros((3, 3))
        for col, row in enumerate(perm):
            d[row, col] = signs[col]
        SIGNED_PERMUTATIONS.append(tuple(d.reshape(-1)))
