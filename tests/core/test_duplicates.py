"""Duplicates: identical bytes always found (copies, renames, hard links), near-identical
photos grouped by exact pairwise cosines, different photos never grouped, cancel works."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from photos import random_photo
from PIL import Image

import gallery_app.core.duplicates as duplicates
from gallery_app.core.duplicates import (
    COMPARING,
    IDENTICAL,
    NEAR,
    DuplicateError,
    find_duplicates,
)
from gallery_app.core.indexer import CancelToken, Indexer

# The tests' tiny random model puts some different photos within 0.99 of each other; a
# re-encoded copy stays above 0.9999, so the tests cut there (real SigLIP: the default 0.95).
CUT = 0.9995


@pytest.fixture
def library_with_copies(library, encoder, tmp_path):
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "b" / "deeper").mkdir(parents=True)
    originals = []
    for seed in range(6):
        path = root / "a" / f"photo_{seed}.jpg"
        Image.fromarray(random_photo(seed, (256, 192))).save(path, "JPEG", quality=95)
        originals.append(path)
    copy = root / "b" / "deeper" / "renamed copy.jpg"
    shutil.copyfile(originals[0], copy)
    link = root / "b" / "hard link.jpg"
    os.link(originals[0], link)
    reencoded = root / "b" / "photo_1 small.jpg"
    Image.open(originals[1]).save(reencoded, "JPEG", quality=60)
    # Same size, different bytes: must not be taken for a copy on size alone.
    twin = root / "b" / "same size.jpg"
    data = bytearray(originals[2].read_bytes())
    data[len(data) // 2] ^= 0xFF
    twin.write_bytes(bytes(data))
    report = Indexer(library, encoder).index([root])
    assert report.failed == []
    return {
        "originals": originals,
        "copy": copy,
        "link": link,
        "reencoded": reencoded,
        "twin": twin,
    }


def vectors_by_path(library) -> dict[str, np.ndarray]:
    ids, matrix = library.catalog.vectors()
    info = library.catalog.images(ids.tolist())
    return {info[int(i)].path: v for i, v in zip(ids, matrix, strict=True)}


def test_identical_and_near_identical_photos_are_grouped(library, library_with_copies):
    paths = library_with_copies
    vectors = vectors_by_path(library)
    others = [str(p) for p in paths["originals"][2:]]
    # The different photos are below the cut, so grouping any of them would be a bug.
    for i, a in enumerate(others):
        for b in others[i + 1 :]:
            assert float(vectors[a] @ vectors[b]) < CUT
    report = find_duplicates(library.catalog, CUT)
    assert not report.cancelled and report.skipped == []
    groups = {frozenset(p.path for p in g.photos): g for g in report.groups}
    same_bytes = frozenset(map(str, [paths["originals"][0], paths["copy"], paths["link"]]))
    near = frozenset(map(str, [paths["originals"][1], paths["reencoded"]]))
    assert set(groups) == {same_bytes, near}
    identical = groups[same_bytes]
    assert identical.kind == IDENTICAL and identical.min_similarity == 1.0
    first = identical.photos[0]
    assert [p.copy_of for p in identical.photos] == [None, 0, 0]
    linked = {p.path for p in identical.photos if p.same_file}
    assert linked == {str(paths["originals"][0]), str(paths["link"])}
    assert first.size == paths["copy"].stat().st_size and (first.width, first.height) == (256, 192)
    assert first.taken is not None and first.taken_source == "file"
    near_group = groups[near]
    assert near_group.kind == NEAR
    assert near_group.photos[0].path == str(paths["originals"][1])  # the larger file first
    cosine = float(vectors[str(paths["originals"][1])] @ vectors[str(paths["reencoded"])])
    assert near_group.min_similarity == pytest.approx(cosine, abs=1e-6)
    assert near_group.photos[1].similarity == pytest.approx(cosine, abs=1e-6)
    assert report.photos == 10 and report.hashed >= 4
    assert groups[same_bytes] is report.groups[0]  # identical groups come first


def test_exact_copies_are_found_whatever_the_cut(library, library_with_copies):
    report = find_duplicates(library.catalog, 1.0)
    assert [len(g.photos) for g in report.groups if g.kind == IDENTICAL] == [3]


def test_an_unreadable_copy_is_reported_and_the_rest_still_grouped(library, library_with_copies):
    library_with_copies["copy"].unlink()
    report = find_duplicates(library.catalog, CUT)
    assert [path for path, _ in report.skipped] == [str(library_with_copies["copy"])]
    assert "not found" in report.skipped[0][1]
    kinds = sorted(g.kind for g in report.groups)
    # The deleted copy is still close by its embedding, so it stays in a (near) group.
    assert kinds in (["identical", "near"], ["near", "near"])


def test_blocked_comparison_equals_brute_force(library, library_with_copies, monkeypatch):
    monkeypatch.setattr(duplicates, "BLOCK_ROWS", 3)
    monkeypatch.setattr(duplicates, "BLOCK_COLUMNS", 4)
    seen = []
    cut = 0.9
    report = find_duplicates(library.catalog, cut, progress=seen.append)
    vectors = vectors_by_path(library)
    paths = sorted(vectors)
    expected = _components(paths, lambda a, b: float(vectors[a] @ vectors[b]) >= cut)
    assert len(expected) >= 2  # the lower cut links more than the copies: chains are tested
    assert {frozenset(p.path for p in g.photos) for g in report.groups} == expected
    comparing = [p for p in seen if p.stage == COMPARING]
    assert comparing[-1].done == comparing[-1].total == 10 * 9 // 2


def _components(paths, linked) -> set[frozenset[str]]:
    groups = {p: {p} for p in paths}
    for i, a in enumerate(paths):
        for b in paths[i + 1 :]:
            if linked(a, b) and groups[a] is not groups[b]:
                merged = groups[a] | groups[b]
                for p in merged:
                    groups[p] = merged
    return {frozenset(g) for g in map(frozenset, groups.values()) if len(g) > 1}


def test_vectorized_union_find_matches_a_plain_one():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        edges = rng.integers(0, n, size=(int(rng.integers(0, 80)), 2))
        parent = np.arange(n, dtype=np.intp)
        for chunk in np.array_split(edges, 3):  # several calls, as blocks do
            duplicates._link(parent, chunk[:, 0].astype(np.intp), chunk[:, 1].astype(np.intp))
        duplicates._flatten(parent)
        names = [str(i) for i in range(n)]
        pairs = {(int(a), int(b)) for a, b in edges} | {(int(b), int(a)) for a, b in edges}
        expected = _components(names, lambda a, b, pairs=pairs: (int(a), int(b)) in pairs)
        got: dict[int, set[str]] = {}
        for i, root in enumerate(parent.tolist()):
            got.setdefault(root, set()).add(str(i))
        assert {frozenset(g) for g in got.values() if len(g) > 1} == expected


def test_cancel_stops_between_steps(library, library_with_copies):
    token = CancelToken()

    def stop_at_first(progress) -> None:
        token.cancel()

    report = find_duplicates(library.catalog, CUT, progress=stop_at_first, cancel=token)
    assert report.cancelled


def test_a_cut_outside_zero_to_one_is_refused(library):
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(DuplicateError, match="--min-similarity"):
            find_duplicates(library.catalog, bad)


def test_nothing_is_written_or_deleted(library, library_with_copies, tmp_path):
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in Path(tmp_path).rglob("*.jpg")}
    find_duplicates(library.catalog, CUT)
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in Path(tmp_path).rglob("*.jpg")}
    assert after == before
