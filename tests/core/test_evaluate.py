"""Quality metrics on hand-checkable rankings, and the eval harness on controlled vectors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gallery_app.core.calibrate import Calibration
from gallery_app.core.errors import ConfigError
from gallery_app.core.evaluate import (
    average_precision,
    best_f1_min_score,
    evaluate,
    expected_calibration_error,
    hit_at_k,
    read_labelled_folder,
    recall_at_k,
    worst_case_order,
)
from gallery_app.core.expansion import Expander
from gallery_app.core.probes import ImageVectors

# --- metrics ------------------------------------------------------------------------------


def test_hit_at_k_is_a_hit_in_the_first_k():
    ranking = [False, False, True, False]
    assert [hit_at_k(ranking, k) for k in (1, 2, 3, 10)] == [0.0, 0.0, 1.0, 1.0]
    assert math.isnan(hit_at_k([False, False], 1))
    with pytest.raises(ValueError):
        hit_at_k(ranking, 0)


def test_recall_at_k_is_the_share_of_relevant_photos_in_the_first_k():
    # Four relevant photos, at ranks 1, 3, 4 and 8.
    ranking = [True, False, True, True, False, False, False, True]
    assert [recall_at_k(ranking, k) for k in (1, 2, 3, 4, 7, 8, 100)] == [
        0.25,
        0.25,
        0.5,
        0.75,
        0.75,
        1.0,
        1.0,
    ]
    # where hit@k already says 1.0 at k = 1
    assert hit_at_k(ranking, 1) == 1.0
    assert math.isnan(recall_at_k([False, False], 1))
    with pytest.raises(ValueError):
        recall_at_k(ranking, 0)


def test_worst_case_order_sorts_by_the_keys_and_puts_tied_relevant_photos_last():
    relevant = np.array([True, False, True, False, False])
    scores = np.array([0.9, 0.9, 0.5, 0.5, 0.7])
    raws = np.array([0.2, 0.2, 0.1, 0.3, 0.1])
    # 0 and 1 tie on both keys (1 goes first); 2 and 3 tie on score, and raw ranks 3 first.
    assert worst_case_order(relevant, scores, raws).tolist() == [1, 0, 4, 3, 2]
    assert worst_case_order(relevant, scores).tolist() == [1, 0, 4, 3, 2]
    with pytest.raises(ValueError):
        worst_case_order(relevant, scores[:3])


def test_average_precision_does_not_depend_on_the_order_ties_arrive_in():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, 60) / 4.0  # four distinct values: many ties
    relevant = rng.random(60) < 0.3
    results = set()
    for _ in range(20):
        shuffled = rng.permutation(60)
        order = worst_case_order(relevant[shuffled], scores[shuffled])
        results.add(average_precision(relevant[shuffled][order]))
    assert len(results) == 1
    # and it is the worst case: no order of the tied photos scores lower
    [worst] = results
    lucky = np.lexsort((~relevant, -scores))
    assert average_precision(relevant[lucky]) > worst


def test_average_precision_from_its_definition():
    # Relevant at ranks 1, 3 and 6: precisions 1/1, 2/3, 3/6.
    ranking = [True, False, True, False, False, True]
    assert average_precision(ranking) == pytest.approx((1 + 2 / 3 + 3 / 6) / 3)
    assert average_precision([True, True, False]) == 1.0
    assert average_precision([False, False, True]) == pytest.approx(1 / 3)
    assert math.isnan(average_precision([False, False]))


def test_ece_is_zero_when_each_bin_is_right_as_often_as_it_claims():
    # Four pairs at 0.25 with one relevant, four at 0.75 with three relevant.
    scores = [0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75]
    relevant = [1, 0, 0, 0, 1, 1, 1, 0]
    assert expected_calibration_error(scores, relevant) == pytest.approx(0.0)


def test_ece_of_an_overconfident_score():
    # All pairs scored 0.9 and half relevant: off by 0.4 everywhere.
    assert expected_calibration_error([0.9] * 6, [1, 0, 1, 0, 1, 0]) == pytest.approx(0.4)
    # Two bins, weighted by their share of the pairs: 0.75 * |0.05 - 0| + 0.25 * |1.0 - 1|.
    got = expected_calibration_error([0.05, 0.05, 0.05, 1.0], [0, 0, 0, 1])
    assert got == pytest.approx(0.75 * 0.05)
    assert math.isnan(expected_calibration_error([], []))
    with pytest.raises(ValueError):
        expected_calibration_error([1.2], [1])


def test_best_f1_on_separable_scores_takes_the_lowest_relevant_score():
    choice = best_f1_min_score([0.9, 0.8, 0.7, 0.3, 0.2], [1, 1, 1, 0, 0])
    assert choice is not None
    assert (choice.min_score, choice.f1, choice.precision, choice.recall) == (0.7, 1.0, 1.0, 1.0)


def test_best_f1_matches_a_brute_force_search():
    rng = np.random.default_rng(0)
    scores = rng.random(200).round(2)  # rounding makes ties
    relevant = rng.random(200) < scores
    choice = best_f1_min_score(scores, relevant)
    assert choice is not None

    def f1_at(min_score: float) -> float:
        predicted = scores >= min_score
        tp = np.sum(predicted & relevant)
        return 0.0 if tp == 0 else 2 * tp / (predicted.sum() + relevant.sum())

    brute = max(f1_at(t) for t in np.unique(scores))
    assert choice.f1 == pytest.approx(brute)
    assert f1_at(choice.min_score) == pytest.approx(choice.f1)


def test_best_f1_without_relevant_pairs_is_none():
    assert best_f1_min_score([0.5, 0.2], [0, 0]) is None


# --- the labelled folder ------------------------------------------------------------------


def save_photo(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), colour).save(path)
    return path


def test_read_labelled_folder(tmp_path: Path):
    save_photo(tmp_path / "red_car" / "a.jpg", (255, 0, 0))
    save_photo(tmp_path / "red_car" / "nested" / "b.png", (250, 0, 0))
    save_photo(tmp_path / "dog" / "c.jpg", (0, 0, 0))
    save_photo(tmp_path / "noise.png", (9, 9, 9))
    (tmp_path / "empty").mkdir()
    (tmp_path / "dog" / "notes.txt").write_text("not a photo")
    labelled = read_labelled_folder(tmp_path)
    assert labelled.labels == ("dog", "red_car")
    assert labelled.queries == ("dog", "red car")
    assert len(labelled.paths) == 4
    by_name = {Path(p).name: i for p, i in zip(labelled.paths, labelled.label_index, strict=True)}
    assert by_name == {"c.jpg": 0, "a.jpg": 1, "b.png": 1, "noise.png": -1}


def test_folder_without_labels_is_a_clear_error(tmp_path: Path):
    save_photo(tmp_path / "loose.jpg", (1, 2, 3))
    with pytest.raises(ConfigError, match="DIR/<label>"):
        read_labelled_folder(tmp_path)
    with pytest.raises(ConfigError, match="not a folder"):
        read_labelled_folder(tmp_path / "missing")


# --- the harness, on vectors whose answer is known ----------------------------------------


class AxisEncoder:
    """Each known word's prompt encodes to its own axis; anything else to the last axis."""

    dim = 4

    def __init__(self, axes: dict[str, int]) -> None:
        self.axes = axes

    def prompt(self, text: str) -> str:
        return f"a photo of {text}."

    def encode_prompts(self, prompts):
        vectors = np.zeros((len(prompts), self.dim), np.float32)
        for row, prompt in enumerate(prompts):
            word = prompt.removeprefix("a photo of ").removesuffix(".")
            vectors[row, self.axes.get(word, self.dim - 1)] = 1.0
        return vectors


def labelled_set(tmp_path: Path):
    for name in ("cat/1.png", "cat/2.png", "red_car/3.png", "red_car/4.png", "other.png"):
        save_photo(tmp_path / name, (0, 0, 0))
    return read_labelled_folder(tmp_path)


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, np.float32)
    return vector / np.linalg.norm(vector)


def test_perfect_vectors_give_perfect_retrieval(tmp_path: Path):
    labelled = labelled_set(tmp_path)  # order: cat 1, cat 2, other, red car 3, red car 4
    vectors = np.stack(
        [
            unit(1, 0, 0, 0.2),
            unit(1, 0, 0, 0.1),
            unit(0, 0, 0, 1),
            unit(0, 1, 0, 0.1),
            unit(0, 1, 0, 0),
        ]
    )
    images = ImageVectors(labelled.paths, vectors)
    report = evaluate(
        labelled,
        images,
        AxisEncoder({"cat": 0, "red car": 1}),
        Expander(),
        Calibration("custom", 10.0, 0.5),
    )
    plain, ensemble, maximum = report.modes
    assert (plain.mode, ensemble.mode, maximum.mode) == ("query_only", "ensemble", "max")
    assert (plain.expand, ensemble.expand, maximum.expand) == (False, True, True)
    assert plain.hit == {1: 1.0, 5: 1.0, 10: 1.0}
    # two relevant photos per query: the first one is half of them
    assert plain.recall == {1: 0.5, 5: 1.0, 10: 1.0}
    assert plain.mean_average_precision == 1.0
    assert plain.mean_score_relevant > 0.9 > 0.1 > plain.mean_score_irrelevant
    assert plain.best_f1 is not None and plain.best_f1.f1 == 1.0
    assert [q.first_relevant_rank for q in plain.per_query] == [1, 1]
    data = report.to_json()
    assert data["labels"] == [
        {"label": "cat", "query": "cat", "images": 2},
        {"label": "red_car", "query": "red car", "images": 2},
    ]
    assert data["distractors"] == 1 and data["images"] == 5
    assert data["query_only"]["hit_at_1"] == 1.0
    assert data["query_only"]["recall_at_1"] == 0.5
    assert data["centre"] == 0.5 and "threshold" not in data
    assert data["ensemble"]["mode"] == "ensemble" and "max" in data


def test_swapped_vectors_give_the_worst_ranking(tmp_path: Path):
    labelled = labelled_set(tmp_path)
    # Cat photos point at the car axis and car photos at the cat axis; the distractor leans
    # slightly towards both, so every relevant photo comes last.
    vectors = np.stack(
        [
            unit(0, 1, 0, 0),
            unit(0, 1, 0, 0),
            unit(0.1, 0.1, 0, 1),
            unit(1, 0, 0, 0),
            unit(1, 0, 0, 0),
        ]
    )
    report = evaluate(
        labelled,
        ImageVectors(labelled.paths, vectors),
        AxisEncoder({"cat": 0, "red car": 1}),
        Expander(),
        Calibration("custom", 10.0, 0.5),
    )
    plain = report.modes[0]
    assert plain.hit[1] == plain.recall[1] == 0.0
    assert plain.recall[5] == 1.0
    assert [q.first_relevant_rank for q in plain.per_query] == [4, 4]
    # Relevant at ranks 4 and 5 of 5: (1/4 + 2/5) / 2.
    assert plain.mean_average_precision == pytest.approx((1 / 4 + 2 / 5) / 2)
    assert plain.mean_score_relevant < plain.mean_score_irrelevant


def test_expansion_changes_the_variants_searched(tmp_path: Path):
    labelled = labelled_set(tmp_path)
    # Cat photos sit near the axis of "kitty", which only expansion searches; the distractor
    # leans further towards "cat" itself than they do.
    vectors = np.stack(
        [
            unit(0.05, 0, 1, 0),
            unit(0.05, 0, 1, 0),
            unit(0.1, 0, 0, 1),
            unit(0, 1, 0, 0),
            unit(0, 1, 0, 0),
        ]
    )
    assert any(v.text == "kitty" for v in Expander().expand("cat"))
    report = evaluate(
        labelled,
        ImageVectors(labelled.paths, vectors),
        AxisEncoder({"cat": 0, "red car": 1, "kitty": 2}),
        Expander(),
        Calibration("custom", 10.0, 0.5),
    )
    plain, ensemble, maximum = report.modes
    assert plain.per_query[0].first_relevant_rank == 2
    assert maximum.per_query[0].first_relevant_rank == 1
    assert maximum.mean_average_precision > plain.mean_average_precision
    assert ensemble.mode == "ensemble"


def test_the_three_modes_rank_by_their_own_statistic(tmp_path: Path):
    from gallery_app.core.expansion import Dictionary, Entry

    labelled = labelled_set(tmp_path)  # order: cat 1, cat 2, other, red car 3, red car 4
    vectors = np.stack(
        [unit(1, 0, 1, 0), unit(0, 0, 1, 0), unit(0.9, 0, 0, 1), unit(0, 1, 0, 0), unit(0, 1, 0, 0)]
    )
    expander = Expander(Dictionary({"cat": Entry("cat", ("kitten",), (("pet", 0.5),))}))
    calibration = Calibration("custom", 10.0, 0.5)
    report = evaluate(
        labelled,
        ImageVectors(labelled.paths, vectors),
        AxisEncoder({"cat": 0, "red car": 1, "kitten": 2}),
        expander,
        calibration,
    )
    plain, ensemble, maximum = report.modes
    e = unit(1, 0, 1, 0)  # cat + kitten; "pet" is broader, never part of e
    cat_scores = {
        "query_only": [float(calibration.score(v @ unit(1, 0, 0, 0))) for v in vectors[:2]],
        "ensemble": [float(calibration.score(v @ e)) for v in vectors[:2]],
        "max": [
            max(float(calibration.score(v @ unit(1, 0, 0, 0))), float(calibration.score(v[2])))
            for v in vectors[:2]
        ],
    }
    car_scores = [float(calibration.score(v @ unit(0, 1, 0, 0))) for v in vectors[3:]]
    for mode in (plain, ensemble, maximum):
        expected = (sum(cat_scores[mode.mode]) + sum(car_scores)) / 4
        assert mode.mean_score_relevant == pytest.approx(expected, abs=1e-6), mode.mode
    # As typed, the distractor (0.9 on the cat axis) beats the kitten-only cat photo; the
    # ensemble puts both cat photos first.
    assert plain.per_query[0].average_precision < 1.0
    assert ensemble.per_query[0].average_precision == 1.0


def test_photos_that_failed_are_left_out(tmp_path: Path):
    labelled = labelled_set(tmp_path)
    kept = labelled.paths[:2] + labelled.paths[3:]
    vectors = np.stack([unit(1, 0, 0, 0), unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0, 1, 0, 0)])
    failures = ((labelled.paths[2], "corrupt"),)
    report = evaluate(
        labelled,
        ImageVectors(kept, vectors, failures),
        AxisEncoder({"cat": 0, "red car": 1}),
        Expander(),
        Calibration("custom", 10.0, 0.5),
    )
    assert report.to_json()["failed"] == [{"path": labelled.paths[2], "reason": "corrupt"}]
    assert report.to_json()["images"] == 4


def test_a_distractor_identical_to_a_relevant_photo_ranks_above_it(tmp_path: Path):
    """A copy of a cat photo outside the cat folder ties with it: the tie counts against."""
    labelled = labelled_set(tmp_path)  # order: cat 1, cat 2, other, red car 3, red car 4
    cat_photo = unit(1, 0, 0, 0.5)
    vectors = np.stack(
        [unit(1, 0, 0, 0.1), cat_photo, cat_photo, unit(0, 1, 0, 0), unit(0, 1, 0, 0)]
    )
    report = evaluate(
        labelled,
        ImageVectors(labelled.paths, vectors),
        AxisEncoder({"cat": 0, "red car": 1}),
        Expander(),
        Calibration("custom", 10.0, 0.5),
    )
    cat = report.modes[0].per_query[0]
    # cat 1 first; then the distractor, then its identical twin cat 2: ranks 1 and 3.
    assert cat.average_precision == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert cat.first_relevant_rank == 1
