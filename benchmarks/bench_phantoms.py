"""Print phantom generation time per case and per slice for each domain (no assertions)."""

import time

from liverwild.phantoms import DOMAINS, generate_case


def main(repeats: int = 3):
    generate_case("PhantomT2MR", 0, 0)  # warm-up (imports, caches)
    print(f"{'domain':20s} {'shape (z,y,x)':>16s} {'s/case':>8s} {'ms/slice':>9s}")
    for name in DOMAINS:
        times = []
        for case in range(repeats):
            start = time.perf_counter()
            image, _, _ = generate_case(name, 0, case)
            times.append(time.perf_counter() - start)
        best = min(times)
        print(f"{name:20s} {str(image.array.shape):>16s} {best:8.3f} {1000 * best / image.array.shape[0]:9.2f}")
    start = time.perf_counter()
    image, _, _ = generate_case("PhantomPortalCT", 0, 0, n_slices=100)
    print(f"100-slice PhantomPortalCT case {image.array.shape}: {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
