"""`gallery-app search --image PATH` and `--not TEXT` / inline parts, through the real CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from gallery_app.cli import main
from gallery_app.core.calibrate import image_calibration, model_preset
from gallery_app.core.expansion import Expander, load_dictionary
from gallery_app.core.library import Library, default_config_dir
from gallery_app.core.search import Searcher


@pytest.fixture
def indexed(tiny_model_dir, make_images, tmp_path):
    photos = make_images(8, folder="photos")
    common = ["--model", str(tiny_model_dir), "--data-dir", str(tmp_path / "data")]
    assert main([*common, "index", str(photos[0].parent)]) == 0
    return common, tmp_path / "data", photos


def run_json(capsys, common, *args):
    capsys.readouterr()
    assert main([*common, "search", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def catalog(encoder, data_dir):
    library = Library(data_dir, encoder.model_id, encoder.dim)
    try:
        ids, vectors = library.catalog.vectors()
        paths = [library.catalog.images(ids.tolist())[int(i)].path for i in ids]
        expander = Expander(load_dictionary(default_config_dir() / "expansions.json"))
        searcher = Searcher(library, encoder, expander)
        variants = {}
        for text in ("red car", "people", "cars", "beach"):
            variants[text] = searcher.variants(text)
    finally:
        library.close()
    return paths, vectors.astype(np.float64), variants


def part_probability(encoder, vectors, variants):
    unit = encoder.encode_prompts([v.prompt for v in variants]).astype(np.float64)
    e = (np.array([v.weight for v in variants])[:, None] * unit).sum(axis=0)
    e /= np.linalg.norm(e)
    return model_preset(encoder.logit_scale, encoder.logit_bias).score(vectors @ e)


def test_inline_and_not_parts_are_exact_and_listed(encoder, indexed, capsys):
    common, data_dir, _ = indexed
    paths, vectors, variants = catalog(encoder, data_dir)
    p_car = part_probability(encoder, vectors, variants["red car"])
    p_people = part_probability(encoder, vectors, variants["people"])
    truth = dict(zip(paths, (p_car * (1 - p_people)).tolist(), strict=True))

    out = run_json(capsys, common, "red car -people", "--top-k", "3")
    assert [(p["text"], p["kind"]) for p in out["parts"]] == [("red car", "and"), ("people", "not")]
    best = sorted(truth.values(), reverse=True)[:3]
    np.testing.assert_allclose([r["score"] for r in out["results"]], best, rtol=1e-5)
    for result in out["results"]:
        car, people = result["parts"]
        assert (car["kind"], people["kind"]) == ("and", "not")
        assert result["score"] == pytest.approx(car["score"] * (1 - people["score"]), rel=1e-9)
        assert result["score"] == pytest.approx(truth[result["path"]], rel=1e-5)
        assert result["raw"] == car["raw"]  # the first part's cosine

    cut = float(np.median(list(truth.values())))
    every = run_json(capsys, common, "red car -people", "--min-score", str(cut))
    assert {r["path"] for r in every["results"]} == {p for p, s in truth.items() if s >= cut}

    flag = run_json(capsys, common, "red car", "--not", "people", "--top-k", "3")
    assert flag["results"] == out["results"]


def test_repeated_not_multiplies_each(indexed, capsys):
    common, _, _ = indexed
    out = run_json(capsys, common, "beach", "--not", "people", "--not", "cars", "--top-k", "8")
    assert [p["kind"] for p in out["parts"]] == ["and", "not", "not"]
    for result in out["results"]:
        beach, people, cars = (p["score"] for p in result["parts"])
        expected = beach * (1 - people) * (1 - cars)
        assert result["score"] == pytest.approx(expected, rel=1e-9)


def test_a_plain_query_keeps_its_json(indexed, capsys):
    common, _, _ = indexed
    out = run_json(capsys, common, "red car", "--top-k", "3")
    assert "parts" not in out and all("parts" not in r for r in out["results"])


def test_image_search_of_a_library_photo_leaves_it_out(encoder, indexed, capsys):
    common, data_dir, photos = indexed
    paths, vectors, _ = catalog(encoder, data_dir)
    query_path = str(photos[1].resolve())
    query_vector = vectors[paths.index(query_path)]
    out = run_json(capsys, common, "--image", str(photos[1]), "--top-k", "20")
    assert out["in_library"] is True and out["scale"] == "image"
    assert (out["temperature"], out["centre"]) == (15.0, 0.7)
    assert query_path not in {r["path"] for r in out["results"]}
    assert len(out["results"]) == 7
    scale = image_calibration()
    for result in out["results"]:
        cosine = float(vectors[paths.index(result["path"])] @ query_vector)
        assert result["raw"] == pytest.approx(cosine, abs=1e-4)  # re-encoded from the file
        assert result["score"] == pytest.approx(float(scale.score(result["raw"])), rel=1e-9)


def test_image_search_of_an_outside_file(indexed, capsys, tmp_path):
    common, _, photos = indexed
    outside = tmp_path / "elsewhere" / "mine.png"
    outside.parent.mkdir()
    shutil.copy(photos[4], outside)
    capsys.readouterr()
    assert main([*common, "search", "--image", str(outside), "--top-k", "2"]) == 0
    text = capsys.readouterr().out
    assert "image-to-image scale" in text and "like mine.png" in text
    out = run_json(capsys, common, "--image", str(outside), "--top-k", "2")
    assert out["in_library"] is False
    assert out["results"][0]["path"] == str(photos[4].resolve())
    assert out["results"][0]["raw"] == pytest.approx(1.0, abs=1e-4)


def test_a_bad_image_is_one_error_line(indexed, capsys, tmp_path):
    common, _, _ = indexed
    bad = tmp_path / "fake.jpg"
    bad.write_bytes(b"%PDF-1.4 not a photo")
    capsys.readouterr()
    assert main([*common, "search", "--image", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gallery-app: error: cannot search by")
    assert "PDF document" in err[0] and str(bad) in err[0]


@pytest.mark.parametrize(
    "args",
    [
        ["search"],
        ["search", "dog", "--image", "x.jpg"],
        ["search", "--image", "x.jpg", "--not", "y"],
    ],
)
def test_query_or_image_is_a_usage_error(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "QUERY" in capsys.readouterr().err
