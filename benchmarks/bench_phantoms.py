"""Print phantom generation time per case and per slice for each domain, and for the issue's reference
case of 256 × 256 × 64 voxels at 2.5 mm and 5 mm slices (no assertions). The one-core figure::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_phantoms.py

(median wall time, and the process's CPU time, which a busy machine does not inflate)."""

import statistics
import time
from dataclasses import replace

from liverwild.phantoms import DOMAINS, generate_case
from liverwild.phantoms.generate import slab_samples


def _times(domain, repeats, n_slices=None):
    """Wall and CPU seconds of ``repeats`` cases (CPU time: what one core spends, even on a busy machine)."""
    times, cpu = [], []
    for case in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        image, _, _ = generate_case(domain, 0, case, n_slices=n_slices)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return image.array.shape, times, cpu


def main(repeats: int = 5):
    generate_case("PhantomT2MR", 0, 0)  # warm-up (imports, caches)
    print(
        f"{'case':34s} {'shape (z,y,x)':>16s} {'min s':>7s} {'median':>7s} {'max':>7s} {'CPU s':>7s} {'ms/slice':>9s}"
    )
    rows = [(name, DOMAINS[name], None) for name in DOMAINS]
    portal = DOMAINS["PhantomPortalCT"]
    for slice_mm in (2.5, 5.0):
        domain = replace(portal, matrix=256, fov_mm=380.0, slice_mm=slice_mm)
        rows.append((f"256x256x64, {slice_mm} mm (slab {slab_samples(slice_mm)})", domain, 64))
    for label, domain, n_slices in rows:
        shape, times, cpu = _times(domain, repeats, n_slices)
        low, mid, high, busy = min(times), statistics.median(times), max(times), statistics.median(cpu)
        print(
            f"{label:34s} {str(shape):>16s} {low:7.2f} {mid:7.2f} {high:7.2f} {busy:7.2f} {1000 * mid / shape[0]:9.1f}"
        )


if __name__ == "__main__":
    main()
