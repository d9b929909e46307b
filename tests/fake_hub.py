"""A tiny local Hugging Face hub over HTTP (model info, HEAD metadata, ranged GETs), for
download tests: HF_ENDPOINT points at it, nothing leaves the machine."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repo: str, files: dict[str, bytes]) -> None:
        self.repo = repo
        self.files = files
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header
        self.down = False  # every request fails with 503 (a hub that is "there" but broken)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:  # keep the test output clean
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def etag(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()

    def ranges(self, name: str) -> list[str | None]:
        """The Range headers of the GETs of one file, in order."""
        return [r for m, p, r in self.requests if m == "GET" and p.endswith(f"/{name}")]

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = handler.path.split("?", 1)[0]
        wanted_range = handler.headers.get("Range")
        self.requests.append((handler.command, path, wanted_range))
        if self.down:
            return self._send(handler, 503, b"down", {}, body)
        if path == "/":
            return self._send(handler, 200, b"ok", {}, body)
        if path.startswith(f"/api/models/{self.repo}"):
            info = {
                "id": self.repo,
                "sha": COMMIT,
                "private": False,
                "siblings": [{"rfilename": n, "size": len(b)} for n, b in self.files.items()],
            }
            return self._send(handler, 200, json.dumps(info).encode(), {}, body)
        prefix = f"/{self.repo}/resolve/"
        if path.startswith(prefix):
            name = path[len(prefix) :].split("/", 1)[1]
            if name in self.files:
                return self._send_file(handler, name, wanted_range, body)
        return self._send(handler, 404, b"not found", {"X-Error-Code": "EntryNotFound"}, body)

    def _send_file(
        self, handler: BaseHTTPRequestHandler, name: str, wanted_range: str | None, body: bool
    ) -> None:
        data = self.files[name]
        headers = {"ETag": f'"{self.etag(name)}"', "X-Repo-Commit": COMMIT}
        if wanted_range and body:
            start = int(wanted_range.split("=", 1)[1].split("-", 1)[0])
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._send(handler, 206, data[start:], headers, body)
        return self._send(handler, 200, data, headers, body)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        headers: dict[str, str],
        body: bool,
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serving(
    monkeypatch: pytest.MonkeyPatch, cache: Path, repo: str, files: dict[str, bytes]
) -> Iterator[FakeHub]:
    """The fake hub, with huggingface_hub pointed at it and at an empty cache, online."""
    from huggingface_hub import constants

    hub = FakeHub(repo, files)
    hub.start()
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    # Read from HF_ENDPOINT once, at import: what setting HF_ENDPOINT before starting does.
    template = hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    # huggingface_hub < 1.0 (what transformers 4.x pins) keeps its own copy of the template.
    from huggingface_hub import file_download

    if hasattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE"):
        monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    try:
        yield hub
    finally:
        hub.stop()
