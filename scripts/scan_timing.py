"""Exact-scan timings: what one search costs at N photos, plain vs expanded, float32 vs float16.

    .venv/bin/python scripts/scan_timing.py [N] [DIM]

Times the search path past the encoder (text vectors cached): the ensemble vector, the scan
(gallery_app.core.vectors.matrix_cosines) and the exact top-k selection, plus the max
aggregate's 8-column scan. Prints p50 and p90 in ms; the budget is 40 ms at 100,000 x 768.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from gallery_app.core.search import _top_rows, ensemble_vector
from gallery_app.core.vectors import matrix_cosines

VARIANTS = 8  # an expanded query: the query and seven synonyms
TOP_K = 20


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def timed(step, repeats: int = 15) -> tuple[float, float]:
    step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 90))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    dim = int(sys.argv[2]) if len(sys.argv) > 2 else 768
    rng = np.random.default_rng(0)
    matrix32 = unit(rng.standard_normal((n, dim), dtype=np.float32))
    matrix16 = matrix32.astype(np.float16)
    text = unit(rng.standard_normal((VARIANTS, dim), dtype=np.float32))
    weights = [1.0] * VARIANTS
    print(f"{n} x {dim}, top {TOP_K}, p50 / p90 ms")
    for name, matrix in (("float32", matrix32), ("float16", matrix16)):
        cases = {
            "plain (1 prompt)": lambda m=matrix: _top_rows(matrix_cosines(m, text[:1]), TOP_K),
            "expanded, ensemble": lambda m=matrix: _top_rows(
                matrix_cosines(m, ensemble_vector(text, weights)[None, :]), TOP_K
            ),
            f"expanded, max ({VARIANTS} columns)": lambda m=matrix: _top_rows(
                matrix_cosines(m, text), TOP_K
            ),
        }
        for label, step in cases.items():
            p50, p90 = timed(step, 15 if name == "float32" else 5)
            print(f"  {name:8} {label:28} {p50:7.1f} {p90:7.1f}")


if __name__ == "__main__":
    main()
