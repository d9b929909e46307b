"""hnswlib ef sweep: recall@10 of text queries on a clustered SigLIP-like fixture.

    .venv/bin/python scripts/ef_sweep.py [N] [SEED]

Photos: an image-side mean (the modality gap) + a mixture of 1-3 concepts drawn from 25
families (clustered, not uniform) + noise; text queries: a text-side mean + one concept +
noise, so true-match cosines are ~0.01-0.17 and unrelated ones ~-0.03-0.08. 1 photo in 40 has
three exact copies, deduplicated as VectorIndex does. Graph: ip space, M=32,
ef_construction=200 as in gallery_app.core.index. Building 100,000 takes minutes.
"""

from __future__ import annotations

import sys
import time

import hnswlib
import numpy as np

DIM = 768
QUERIES = 300
EFS = (50, 100, 150, 200, 300, 400)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def fixture(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    families = unit(rng.standard_normal((25, DIM)))
    family_of = rng.integers(0, 25, 400)
    concepts = unit(rng.standard_normal((400, DIM)) * 0.55 + families[family_of])
    image_mean, text_mean = unit(rng.standard_normal(DIM)), unit(rng.standard_normal(DIM))
    count = rng.integers(1, 4, n)
    weights = rng.dirichlet([1.0] * 3, n) * (np.arange(3)[None, :] < count[:, None])
    weights /= weights.sum(axis=1, keepdims=True)
    content = np.einsum("nk,nkd->nd", weights, concepts[rng.integers(0, 400, (n, 3))])
    noise = unit(rng.standard_normal((n, DIM)))
    images = unit(0.9 * image_mean + 0.55 * unit(content) + 0.5 * noise)
    for source in rng.choice(n, n // 40, replace=False):
        images[(source + 1 + np.arange(3) * 7919) % n] = images[source]
    topic = concepts[rng.integers(0, 400, QUERIES)]
    texts = unit(0.95 * text_mean + 0.3 * topic + 0.08 * unit(rng.standard_normal((QUERIES, DIM))))
    return images, texts


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    images, texts = fixture(n, rng)
    distinct = np.unique(images, axis=0)
    print(f"{n} photos, {len(distinct)} distinct vectors")
    index = hnswlib.Index(space="ip", dim=DIM)
    index.init_index(max_elements=len(distinct), M=32, ef_construction=200)
    start = time.perf_counter()
    index.add_items(distinct, np.arange(len(distinct)))
    print(f"build: {time.perf_counter() - start:.1f} s", flush=True)
    truth = np.argsort(-(texts @ distinct.T), axis=1)[:, :10]
    for ef in EFS:
        index.set_ef(ef)
        start = time.perf_counter()
        found, _ = index.knn_query(texts, k=10)
        per_query = (time.perf_counter() - start) / QUERIES
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        print(f"ef {ef:4d}: recall@10 {recall:.4f}  {per_query * 1e3:.2f} ms/query", flush=True)


if __name__ == "__main__":
    main()
