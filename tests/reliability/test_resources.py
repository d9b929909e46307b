"""Model folders that are missing, partial or hostile; bounded memory; the thumbnail cache;
nothing on disk is unpickled or run, no shell is called with a path."""

from __future__ import annotations

import ast
import json
import pickle
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from gallery_app.core import indexer as indexer_module
from gallery_app.core.embeddings import SiglipEncoder
from gallery_app.core.errors import ConfigError, ModelUnavailable
from gallery_app.core.expansion import load_dictionary
from gallery_app.core.indexer import Indexer

PACKAGE = Path(__file__).resolve().parents[2] / "gallery_app"


def copy_model(tiny_model_dir: Path, target: Path, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(tiny_model_dir, target)
    for name in drop:
        (target / name).unlink()
    return target


def damage_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def garbage_config(folder: Path) -> None:
    (folder / "config.json").write_text("{ this is not json", encoding="utf-8")


@pytest.mark.parametrize(
    "breakage",
    [
        ("empty folder", lambda f: [p.unlink() for p in f.iterdir()]),
        ("no weights", lambda f: (f / "model.safetensors").unlink()),
        ("no tokenizer", lambda f: (f / "spiece.model").unlink()),
        ("truncated weights", damage_weights),
        ("garbage config", garbage_config),
    ],
    ids=lambda b: b[0],
)
def test_broken_model_folder_is_model_unavailable_naming_it(tiny_model_dir, tmp_path, breakage):
    folder = copy_model(tiny_model_dir, tmp_path / "model")
    breakage[1](folder)
    with pytest.raises(ModelUnavailable) as error:
        SiglipEncoder.load(str(folder), device="cpu")
    assert str(folder) in str(error.value)


def test_broken_model_is_one_line_and_exit_1_in_the_cli(tiny_model_dir, tmp_path):
    folder = copy_model(tiny_model_dir, tmp_path / "model")
    damage_weights(folder)
    run = subprocess.run(
        [sys.executable, "-m", "gallery_app", "--model", str(folder), "search", "dog"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("gallery-app: error:") and str(folder) in line


class Payload:
    """Unpickling this creates a file: proof that something on disk was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def test_pickled_weights_and_remote_code_are_never_loaded(tiny_model_dir, tmp_path):
    folder = copy_model(tiny_model_dir, tmp_path / "model", drop=("model.safetensors",))
    pickled = tmp_path / "pickle-ran"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(pickled)))
    remote = tmp_path / "remote-code-ran"
    (folder / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(remote)!r}).write_text('ran')\n", encoding="utf-8"
    )
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoModel": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")

    with pytest.raises(ModelUnavailable):
        SiglipEncoder.load(str(folder), device="cpu")
    assert not pickled.exists()
    assert not remote.exists()


def test_no_pickle_no_shell_no_remote_code_in_the_package():
    """Static guard over the package source: the calls that would run code from disk."""
    problems = []
    for source in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{source.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "dill", "shelve", "marshal") for n in names):
                    problems.append(f"{where}: imports a pickle-like module")
                # One exception: the decode probe runs this interpreter on a fixed script.
                if any(n.split(".")[0] == "subprocess" for n in names) and source.name != (
                    "decode_journal.py"
                ):
                    problems.append(f"{where}: imports subprocess")
            if isinstance(node, ast.Call):
                func = ast.unparse(node.func)
                if func in ("os.system", "os.popen", "torch.load", "np.load", "numpy.load"):
                    problems.append(f"{where}: calls {func}")
                program = ast.unparse(node.args[0]) if node.args else ""
                if func.startswith("subprocess.") and not program.startswith("[sys.executable, "):
                    problems.append(f"{where}: runs a program other than this Python")
                for keyword in node.keywords:
                    value = ast.unparse(keyword.value)
                    if keyword.arg == "trust_remote_code" and value != "False":
                        problems.append(f"{where}: trust_remote_code={value}")
                    if keyword.arg == "shell" and value != "False":
                        problems.append(f"{where}: shell={value}")
                    if keyword.arg == "use_safetensors" and value != "True":
                        problems.append(f"{where}: use_safetensors={value}")
    assert problems == []


@pytest.mark.parametrize(
    "content",
    [
        b"{ not json",
        b"\xff\xfe not utf-8",
        b"[1, 2, 3]",
        b'{"terms": {"dog": "puppy"}}',
        b'{"terms": {"dog": {"synonyms": [1, 2]}}}',
        b'{"terms": {}, "remove": "cat"}',
        b'{"__class__": "os.system", "terms": {"x": {"related": {"y": "high"}}}}',
    ],
)
def test_bad_user_expansion_file_is_a_config_error_naming_it(tmp_path, content):
    user_file = tmp_path / "expansions.json"
    user_file.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        load_dictionary(user_file)
    assert str(user_file) in str(error.value)


def test_decoded_images_held_at_once_are_bounded_not_proportional(
    library, encoder, tmp_path, monkeypatch
):
    """Streaming: however many files, only the decode-ahead window is alive at once."""
    from PIL import Image

    folder = tmp_path / "many"
    folder.mkdir()
    tile = Image.new("RGB", (8, 8), (90, 120, 200))
    count = 120
    for i in range(count):
        tile.putpixel((i % 8, i // 8 % 8), (i % 256, 0, 0))
        tile.save(folder / f"{i:04d}.png")
    alive: set[int] = set()
    peak = [0]
    real_decode = indexer_module.decode

    def counting_decode(*args, **kwargs):
        decoded = real_decode(*args, **kwargs)
        key = id(decoded)
        alive.add(key)
        weakref.finalize(decoded, alive.discard, key)
        return decoded

    class Watching:
        dim = encoder.dim
        image_spec = encoder.image_spec

        def encode_pixels(self, pixels):
            peak[0] = max(peak[0], len(alive))
            return encoder.encode_pixels(pixels)

    monkeypatch.setattr(indexer_module, "decode", counting_decode)
    batch, workers = 4, 2
    report = Indexer(library, Watching(), batch_size=batch, decode_workers=workers).index([folder])
    assert report.indexed == count
    # The window (3 batches queued) + the batch being encoded + the one just done.
    assert 0 < peak[0] <= 5 * batch + workers < count // 4


def test_thumbnail_cache_size_clear_and_rebuild(tiny_model_dir, make_images, tmp_path):
    paths = make_images(5)
    (paths[0].parent / "broken.jpg").write_bytes(b"broken")
    data = tmp_path / "data"
    common = [sys.executable, "-m", "gallery_app", "--data-dir", str(data)]

    def cache(action: str) -> dict:
        run = subprocess.run(
            [*common, "cache", action, "--json"], capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    index = subprocess.run(
        [*common, "--model", str(tiny_model_dir), "index", str(paths[0].parent)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert index.returncode == 0, index.stderr
    info = cache("info")
    files = sorted((data / "thumbnails").rglob("*.jpg"))
    assert info["files"] == len(files) == 5
    assert info["bytes"] == sum(f.stat().st_size for f in files) > 0

    (data / "thumbnails" / "notes.txt").write_text("not ours")  # never touched by clear
    cleared = cache("clear")
    assert (cleared["files"], cleared["bytes"]) == (0, 0)
    assert not list((data / "thumbnails").rglob("*.jpg"))
    assert (data / "thumbnails" / "notes.txt").exists()

    rebuilt = cache("rebuild")
    assert (rebuilt["made"], rebuilt["failed"], rebuilt["files"]) == (5, 0, 5)
    assert rebuilt["bytes"] == info["bytes"]  # the same thumbnails, made again
    again = cache("rebuild")
    assert again["made"] == 0  # nothing missing: nothing decoded

    human = subprocess.run([*common, "cache", "info"], capture_output=True, text=True, timeout=300)
    assert str(data / "thumbnails") in human.stdout and "5 thumbnails" in human.stdout
