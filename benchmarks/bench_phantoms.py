"""Print phantom generation time per case and per slice for each domain, and for the issue's reference
case of 256 × 256 × 64 voxels at 2.5 mm and 5 mm slices (no assertions). Pin it to one core for the
one-core figure: ``taskset -c 0 python benchmarks/bench_phantoms.py``."""

import statistics
import time
from dataclasses import replace

from liverwild.phantoms import DOMAINS, generate_case
from liverwild.phantoms.generate import slab_samples


def _times(domain, repeats, n_slices=None):
    times = []
    for case in range(repeats):
        start = time.perf_counter()
        image, _, _ = generate_case(domain, 0, case, n_slices=n_slices)
        times.append(time.perf_counter() - start)
    return image.array.shape, times


def main(repeats: int = 5):
    generate_case("PhantomT2MR", 0, 0)  # warm-up (imports, caches)
    print(f"{'case':34s} {'shape (z,y,x)':>16s} {'min s':>7s} {'median':>7s} {'max':>7s} {'ms/slice':>9s}")
    rows = [(name, DOMAINS[name], None) for name in DOMAINS]
    portal = DOMAINS["PhantomPortalCT"]
    for slice_mm in (2.5, 5.0):
        domain = replace(portal, matrix=256, fov_mm=380.0, slice_mm=slice_mm)
        rows.append((f"256x256x64, {slice_mm} mm (slab {slab_samples(slice_mm)})", domain, 64))
    for label, domain, n_slices in rows:
        shape, times = _times(domain, repeats, n_slices)
        low, mid, high = min(times), statistics.median(times), max(times)
        print(f"{label:34s} {str(shape):>16s} {low:7.2f} {mid:7.2f} {high:7.2f} {1000 * mid / shape[0]:9.1f}")


if __name__ == "__main__":
    main()
