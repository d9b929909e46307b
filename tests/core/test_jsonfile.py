"""The one safe reader of user files: whatever the file holds or is, JSON or a ConfigError."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from gallery_app.core.errors import ConfigError, CorruptIndex
from gallery_app.core.jsonfile import read_json_file, read_regular_file


def test_reads_plain_json_with_or_without_a_bom(tmp_path: Path):
    path = tmp_path / "a.json"
    path.write_bytes(b'{"x": [1, 2.5, "caf\xc3\xa9"], "y": null}')
    assert read_json_file(path) == {"x": [1, 2.5, "café"], "y": None}
    path.write_bytes(b'\xef\xbb\xbf{"x": 1}')  # Notepad's UTF-8
    assert read_json_file(path) == {"x": 1}


def test_a_missing_file_is_file_not_found(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        read_json_file(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
        (b"1e999999", "out of range"),
        (b"-1e400", "out of range"),
        (b"9" * 5000, "5000 digits"),
        (b"[NaN]", "NaN is not a JSON number"),
        (b'{"t": Infinity}', "Infinity is not a JSON number"),
        (b"{broken", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"a": "caf\xe9"}', "not UTF-8 text (byte 10"),
    ],
    ids=[
        "nested-lists",
        "nested-objects",
        "huge-float",
        "huge-negative",
        "huge-int",
        "nan",
        "infinity",
        "broken",
        "empty",
        "latin1",
    ],
)
def test_hostile_content_is_a_config_error_naming_the_file(tmp_path: Path, content, says):
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        read_json_file(path, "Settings file", fix="Delete it.")
    message = str(raised.value)
    assert says in message
    assert message.startswith(f"Settings file {path} ") and message.endswith("Delete it.")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path):
    fifo = tmp_path / "settings.json"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"not a regular file \(a named pipe\)"):
        read_json_file(fifo, "Settings file")


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null"])
def test_a_link_to_a_device_is_refused(tmp_path: Path, target):
    if not os.path.exists(target):
        pytest.skip(f"no {target} here")
    link = tmp_path / "expansions.json"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match=r"not a regular file \(a device\)"):
        read_json_file(link, "Expansions file")


def test_a_folder_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"not a regular file \(a folder\)"):
        read_json_file(tmp_path, "Settings file")


def test_a_file_over_the_bound_is_refused_unread(tmp_path: Path):
    path = tmp_path / "big.json"
    path.write_text("[" + "0," * 600 + "0]")
    assert len(read_json_file(path, max_bytes=2000)) == 601
    with pytest.raises(ConfigError, match="more than the 1000 allowed"):
        read_json_file(path, max_bytes=1000)


def test_a_file_that_grows_while_read_stops_at_the_bound(tmp_path: Path, monkeypatch):
    path = tmp_path / "growing.json"
    path.write_text("[]")
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: real_read(fd, n) or b" " * n)  # never ends
    with pytest.raises(ConfigError, match="more than the 4096 bytes allowed"):
        read_regular_file(path, max_bytes=4096)


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.EACCES, "permission denied at"),
        (errno.ELOOP, "too many levels of symbolic links at"),
        (errno.ENAMETOOLONG, "name too long"),
        (errno.EIO, "input/output error at"),
    ],
)
def test_an_os_error_is_described_in_words(tmp_path: Path, monkeypatch, code, says):
    path = tmp_path / "settings.json"
    path.write_text("{}")

    def refuse(name, *args, **kwargs):
        raise OSError(code, os.strerror(code), name)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ConfigError) as raised:
        read_json_file(path, "Settings file")
    message = str(raised.value)
    assert message.startswith(f"Cannot read Settings file: {says}") and str(path) in message


def test_the_error_type_is_the_callers(tmp_path: Path):
    path = tmp_path / "vectors.hnsw.json"
    path.write_text("[[[")
    with pytest.raises(CorruptIndex, match="not valid JSON"):
        read_json_file(path, "Index sidecar", error=CorruptIndex)
