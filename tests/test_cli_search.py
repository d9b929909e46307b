"""`gallery-app search` is exact: top-k and min-score equal a brute-force ranking of the library,
on a library grown over three index runs with many identical photos, on both retrieval paths."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import gallery_app.core.search as search
from gallery_app.cli import main
from gallery_app.core.calibrate import model_preset
from gallery_app.core.expansion import Expander, load_dictionary
from gallery_app.core.library import Library, default_config_dir
from gallery_app.core.search import Searcher


@pytest.fixture
def grown_library(tiny_model_dir, make_images, tmp_path):
    """Three index runs: originals; copies of them plus a few new photos; hard links."""
    originals = make_images(6, folder="run1")
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    assert main([*common, "index", str(originals[0].parent)]) == 0
    second = tmp_path / "run2"
    second.mkdir()
    for n, photo in enumerate(originals * 3):
        shutil.copy(photo, second / f"copy_{n:02d}.png")
    make_images(3, folder="run2", start=50)
    assert main([*common, "index", str(second)]) == 0
    third = tmp_path / "run3"
    third.mkdir()
    for n, photo in enumerate(originals * 2):
        os.link(photo, third / f"link_{n:02d}.png")
    assert main([*common, "index", str(third)]) == 0
    return common, tmp_path / "data"


def brute_force(encoder, data_dir, query):
    """Every photo's ensemble score from the catalog's vectors, from the definition."""
    library = Library(data_dir, encoder.model_id, encoder.dim)
    try:
        expander = Expander(load_dictionary(default_config_dir() / "expansions.json"))
        variants = Searcher(library, encoder, expander).variants(query)
        ids, vectors = library.catalog.vectors()
        paths = [library.catalog.images(ids.tolist())[int(i)].path for i in ids]
    finally:
        library.close()
    text = encoder.encode_prompts([v.prompt for v in variants])
    e = sum(v.weight * t.astype(np.float64) for v, t in zip(variants, text, strict=True))
    e /= np.linalg.norm(e)
    calibration = model_preset(encoder.logit_scale, encoder.logit_bias)
    scores = calibration.score(vectors.astype(np.float64) @ e)
    return dict(zip(paths, scores.tolist(), strict=True))


def search_json(capsys, common, *args):
    capsys.readouterr()
    assert main([*common, "search", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def assert_exact_top(results, truth, k):
    """The results are a top k of the truth: the same scores, and nothing left out scores
    higher than the last one shown (identical photos tie; which of them is shown is free)."""
    best = sorted(truth.values(), reverse=True)[:k]
    assert len(results) == k
    np.testing.assert_allclose([r["score"] for r in results], best, atol=1e-6)
    for result in results:
        assert truth[result["path"]] == pytest.approx(result["score"], abs=1e-6)
    shown = {r["path"] for r in results}
    floor = min(r["score"] for r in results)
    assert all(score <= floor + 1e-6 for path, score in truth.items() if path not in shown)


@pytest.mark.parametrize("path", ["exact scan", "graph"])
def test_top_k_equals_brute_force_over_three_runs_of_copies(
    encoder, grown_library, capsys, monkeypatch, path
):
    common, data_dir = grown_library
    if path == "graph":  # as a library beyond the exact-scan size is searched
        monkeypatch.setattr(search, "EXACT_SCAN_MAX", 0)
    truth = brute_force(encoder, data_dir, "cat")
    assert len(truth) == 6 + 18 + 3 + 12
    for k in (1, 5, 10, 25):
        out = search_json(capsys, common, "cat", "--top-k", str(k))
        assert out["aggregate"] == "ensemble" and out["top_k"] == k
        assert_exact_top(out["results"], truth, k)
    library = Library(data_dir, encoder.model_id, encoder.dim, read_only=True)
    try:
        assert library.index.node_count == 9 and len(library.index) == 39  # one node a photo
    finally:
        library.close()


def test_min_score_returns_every_photo_above_it(encoder, grown_library, capsys):
    common, data_dir = grown_library
    truth = brute_force(encoder, data_dir, "cat")
    cut = sorted(truth.values(), reverse=True)[29] - 1e-9  # 30 photos: more than the default 20
    out = search_json(capsys, common, "cat", "--min-score", repr(cut))
    assert out["min_score"] == pytest.approx(cut) and out["top_k"] is None
    expected = sorted(s for s in truth.values() if s >= cut)
    assert len(out["results"]) == len(expected) >= 30
    assert {r["path"] for r in out["results"]} == {p for p, s in truth.items() if s >= cut}
    capped = search_json(capsys, common, "cat", "--min-score", repr(cut), "--top-k", "4")
    assert [r["path"] for r in capped["results"]] == [r["path"] for r in out["results"][:4]]


def test_json_lists_exactly_the_ensembles_variants_and_raw_is_cos_e(
    encoder, tiny_model_dir, make_images, tmp_path, capsys
):
    folder = make_images(5)[0].parent
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "d")]
    assert main([*common, "index", str(folder)]) == 0
    out = search_json(capsys, common, "cat", "--top-k", "5")
    assert all(v["kind"] in ("query", "synonym") for v in out["variants"])
    text = encoder.encode_prompts([v["prompt"] for v in out["variants"]])
    e = sum(v["weight"] * t for v, t in zip(out["variants"], text, strict=True))
    e = e / np.linalg.norm(e)
    library = Library(tmp_path / "d", encoder.model_id, encoder.dim)
    try:
        ids, vectors = library.catalog.vectors()
        path_of = {int(i): library.catalog.images([int(i)])[int(i)].path for i in ids}
    finally:
        library.close()
    cos = {path_of[int(i)]: float(v @ e) for i, v in zip(ids, vectors, strict=True)}
    for result in out["results"]:
        assert result["raw"] == pytest.approx(cos[result["path"]], abs=1e-5)
        assert result["variant"] == "ensemble" and result["prompt"] is None

    wider = search_json(capsys, common, "cat", "--top-k", "5", "--broader")
    assert wider["variants"] == out["variants"]  # broader terms never enter e
    assert wider["broader"] and all(v["kind"] == "broader" for v in wider["broader"])

    maximum = search_json(capsys, common, "cat", "--top-k", "5", "--aggregate", "max")
    assert maximum["aggregate"] == "max"
    assert [v["text"] for v in maximum["variants"]] == [v["text"] for v in out["variants"]]
    prompts = {v["text"]: v["prompt"] for v in maximum["variants"]}
    for result in maximum["results"]:
        assert result["prompt"] == prompts[result["variant"]]
    plain = search_json(capsys, common, "cat", "--top-k", "5", "--no-expand")
    assert [v["text"] for v in plain["variants"]] == ["cat"]
    assert plain["results"][0]["variant"] == "cat"  # one prompt: the variant itself


def test_help_documents_the_new_options(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"default {search.DEFAULT_TOP_K};" in text
    assert "--min-score" in text and "--broader" in text
    assert "an OR that can only raise scores" in text


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "nan"])
def test_min_score_outside_0_1_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "cat", "--min-score", bad])
    assert exit_info.value.code == 2
    assert "--min-score" in capsys.readouterr().err
