"""The simulated SigLIP-like library gives the cosines and duplicates it advertises."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import quality
import simulated_library as sim

SMALL = sim.SimulationSpec(images=6000)


@pytest.fixture(scope="module")
def library() -> sim.SimulatedLibrary:
    return sim.simulate(SMALL)


def test_cosines_fall_in_the_advertised_ranges(library: sim.SimulatedLibrary) -> None:
    ranges = sim.cosine_ranges(library)
    match_low, match_high = sim.MATCH_COSINE_RANGE
    unrelated_low, unrelated_high = sim.UNRELATED_COSINE_RANGE
    assert ranges.match[0] == pytest.approx(match_low, abs=0.02)
    assert ranges.match[2] == pytest.approx(match_high, abs=0.025)
    assert ranges.unrelated[0] == pytest.approx(unrelated_low, abs=0.02)
    assert ranges.unrelated[2] == pytest.approx(unrelated_high, abs=0.02)
    # The model's own centre separates the typical match from the typical non-match, and a
    # sibling concept (a cat for "dog") sits in between.
    centre = quality.siglip_base_calibration().centre
    assert ranges.unrelated[1] < ranges.same_family[1] < centre < ranges.match[1]


def test_vectors_are_unit_length_and_text_lives_in_its_own_cone(
    library: sim.SimulatedLibrary,
) -> None:
    assert library.images.shape == (SMALL.images, SMALL.dim)
    assert np.allclose(np.linalg.norm(library.images, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(library.synonym_text, axis=-1), 1, atol=1e-5)
    image_to_image = library.images[:500] @ library.images[500:1000].T
    text_to_image = library.query_text @ library.images[:500].T
    assert np.median(image_to_image) > 0.25  # images share a cone ...
    assert np.median(text_to_image) < 0  # ... and text sits apart from it (the modality gap)


def test_copies_are_identical_and_near_duplicates_close(library: sim.SimulatedLibrary) -> None:
    copies = np.flatnonzero(library.copy_of >= 0)
    assert len(copies) == round(SMALL.copy_fraction * SMALL.images)
    sources = library.copy_of[copies]
    assert np.array_equal(library.images[copies], library.images[sources])
    assert np.array_equal(library.labels[:, copies], library.labels[:, sources])
    # Some photos are copied many times over (a folder imported again and again).
    assert np.bincount(sources).max() >= 10
    near = np.flatnonzero(library.near_duplicate_of >= 0)
    cos = np.sum(library.images[near] * library.images[library.near_duplicate_of[near]], axis=1)
    assert cos.min() > 0.94 and cos.max() < 0.999
    # Every copy is bit for bit its source: the graph holds one node per distinct vector.
    assert quality.distinct_count(library.images) == SMALL.images - len(copies)


def test_the_simulation_is_deterministic() -> None:
    spec = sim.SimulationSpec(images=500)
    first, again = sim.simulate(spec), sim.simulate(spec)
    assert np.array_equal(first.images, again.images)
    assert np.array_equal(first.synonym_text, again.synonym_text)
    other = sim.simulate(sim.SimulationSpec(images=500, seed=1))
    assert not np.array_equal(first.images, other.images)


def test_modes_score_as_the_issue_defines_them(library: sim.SimulatedLibrary) -> None:
    calibration = quality.siglip_base_calibration()
    small = sim.SimulatedLibrary(
        **{**library.__dict__, "images": library.images[:50], "labels": library.labels[:, :50]}
    )
    paths = tuple(str(i) for i in range(50))
    variants = np.vstack([small.query_text[3][None], small.synonym_text[3]])
    # ensemble: e = normalize(sum w_i t_i), score = sigmoid(T (cos(image, e) - c))
    hits = quality.mode_hits(small, 3, "ensemble", paths)
    e = variants.sum(axis=0) / np.linalg.norm(variants.sum(axis=0))
    score, raw = quality.column_scores(hits, calibration)
    assert np.allclose(raw, small.images @ e, atol=1e-6)
    assert np.allclose(score, calibration.score(small.images @ e), atol=1e-9)
    # max with the broader term: the best w_i sigmoid(T (cos_i - c)), broader at 0.8
    hits = quality.mode_hits(small, 3, "max_broader", paths)
    columns = np.vstack([variants, small.broader_text[small.family_of[3]][None]])
    weights = np.array([1.0] * len(variants) + [quality.BROADER_WEIGHT])
    by_hand = calibration.score(small.images @ columns.T) * weights
    score, _ = quality.column_scores(hits, calibration)
    assert np.allclose(score, by_hand.max(axis=1), atol=1e-6)
    # the query alone is the model's own score of the prompt
    hits = quality.mode_hits(small, 3, "query", paths)
    score, _ = quality.column_scores(hits, calibration)
    assert np.allclose(score, calibration.score(small.images @ small.query_text[3]), atol=1e-9)


def test_recall_counts_ties_with_the_tenth() -> None:
    exact = np.array([0.5, 0.4, 0.3, 0.3, 0.3], np.float32)  # 3rd best 0.3, tied three times
    assert quality.recall(np.array([0.5, 0.3, 0.3], np.float32), 0.3, k=3) == 1.0
    assert quality.recall(np.array([0.5, 0.4, 0.2], np.float32), float(exact[2]), k=3) == 2 / 3
