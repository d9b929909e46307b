"""VectorIndex keeps identical vectors as one graph node and hands every copy back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gallery_app.core.index import VectorIndex

DIM = 16


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_identical_vectors_are_one_node_and_all_come_back() -> None:
    distinct = unit(np.random.default_rng(0), 10)
    vectors = np.concatenate([distinct, np.repeat(distinct[:1], 5, axis=0)])
    index = VectorIndex(DIM)
    index.add(np.arange(15), vectors)

    assert len(index) == 15 and index.node_count == 10
    assert index.live_ids() == set(range(15))
    labels, sims = index.query(distinct[:1], k=1)
    assert sorted(labels[0].tolist()) == [0, 10, 11, 12, 13, 14]
    np.testing.assert_allclose(sims[0], 1.0, atol=1e-5)
    np.testing.assert_allclose(index.get_vectors([12]), distinct[:1], atol=1e-6)


def test_duplicates_added_in_later_batches_and_after_a_reload(tmp_path: Path) -> None:
    distinct = unit(np.random.default_rng(1), 20)
    index = VectorIndex(DIM)
    index.add(np.arange(20), distinct)
    index.add([100, 101], distinct[[3, 3]])  # a second run: copies of an old photo
    path = tmp_path / "v.hnsw"
    index.save(path, generation=2)

    loaded, state = VectorIndex.load(path, DIM)
    assert (101, 3) in state.aliases and len(loaded) == 22 and loaded.node_count == 20
    loaded.add([200], distinct[3:4])  # a third run, in a new process
    assert loaded.node_count == 20 and len(loaded) == 23
    labels, _ = loaded.query(distinct[3:4], k=1)
    assert sorted(labels[0].tolist()) == [3, 100, 101, 200]


def test_removing_a_node_hands_its_vector_to_a_copy() -> None:
    distinct = unit(np.random.default_rng(2), 8)
    index = VectorIndex(DIM)
    index.add(np.arange(8), distinct)
    index.add([50, 51], distinct[[2, 2]])

    index.remove([2])
    assert index.live_ids() == set(range(8)) - {2} | {50, 51}
    labels, sims = index.query(distinct[2:3], k=1)
    assert sorted(labels[0].tolist()) == [50, 51] and sims[0, 0] > 0.9999

    index.remove([50, 51])
    labels, _ = index.query(distinct[2:3], k=10)
    assert not {2, 50, 51} & set(labels[0].tolist())
    assert len(index) == index.node_count == 7


def test_a_copy_whose_vector_changes_leaves_its_group() -> None:
    distinct = unit(np.random.default_rng(3), 6)
    index = VectorIndex(DIM)
    index.add(np.arange(6), distinct)
    index.add([9], distinct[1:2])
    assert index.node_count == 6

    fresh = unit(np.random.default_rng(4), 1)
    index.add([9], fresh)
    assert index.node_count == 7
    labels, _ = index.query(distinct[1:2], k=1)
    assert labels[0].tolist() == [1]
    labels, _ = index.query(fresh, k=1)
    assert labels[0].tolist() == [9]

    # And a node whose vector changes keeps its copies on the old vector.
    index.add([20, 21], distinct[[4, 4]])
    index.add([4], fresh * -1)
    labels, _ = index.query(distinct[4:5], k=1)
    assert sorted(labels[0].tolist()) == [20, 21]
    assert len(index) == 9


def test_many_copies_do_not_hide_the_true_neighbours() -> None:
    """The issue's case: a library of many identical photos; the graph still finds the rest."""
    rng = np.random.default_rng(5)
    distinct = unit(rng, 300)
    copies = np.repeat(distinct[:3], 200, axis=0)
    index = VectorIndex(DIM, ef_search=50)
    for run, batch in enumerate(np.array_split(np.concatenate([distinct, copies]), 3)):
        start = sum(len(b) for b in np.array_split(np.concatenate([distinct, copies]), 3)[:run])
        index.add(np.arange(start, start + len(batch)), batch)
    assert index.node_count == 300
    queries = unit(rng, 20)
    everything = np.concatenate([distinct, copies])
    for query in queries:
        labels, _ = index.query(query, k=10)
        found = {int(i) for i in labels[0] if i >= 0}
        exact = np.sort(everything @ query)[::-1][:10]
        assert np.allclose(np.sort(everything[list(found)] @ query)[::-1][:10], exact, atol=1e-5)


def test_the_same_photo_encoded_twice_is_one_node_a_different_one_is_not() -> None:
    """Batches change the last bits of an embedding (~1e-7); that is still the same photo."""
    rng = np.random.default_rng(6)
    distinct = unit(rng, 10)
    noisy = distinct[:2] + rng.choice([-1, 1], size=(2, DIM)).astype(np.float32) * 6e-8
    different = distinct[2:3] + 1e-3 * unit(rng, 1)
    index = VectorIndex(DIM)
    index.add(np.arange(10), distinct)
    index.add([20, 21, 22, 23], np.concatenate([noisy, different, noisy[:1]]))
    assert index.node_count == 11 and len(index) == 14
    labels, _ = index.query(distinct[:1], k=1)
    assert sorted(labels[0].tolist()) == [0, 20, 23]
    # Re-adding an unchanged vector keeps its group together.
    index.add([0], distinct[:1])
    labels, _ = index.query(distinct[:1], k=1)
    assert sorted(labels[0].tolist()) == [0, 20, 23] and index.node_count == 11
