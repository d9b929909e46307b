"""Run in a subprocess by the journal tests: index a folder, and block inside the decode of
one chosen file, as a decoder that never returns or is about to be OOM-killed would.

    python decode_child.py MODEL DATA FOLDER STUCK_FILE MARKER

Writes MARKER once the decode of STUCK_FILE has started, then waits for SIGKILL.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from gallery_app.core import indexer
from gallery_app.core.embeddings import SiglipEncoder
from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library


def main() -> None:
    model, data, folder, stuck, marker = sys.argv[1:6]
    real_decode = indexer.decode

    def decode(path, *args, **kwargs):
        if str(path) == stuck:
            Path(marker).write_text("decoding", encoding="utf-8")
            threading.Event().wait()  # until SIGKILL
        return real_decode(path, *args, **kwargs)

    indexer.decode = decode
    encoder = SiglipEncoder.load(model, device="cpu")
    library = Library(Path(data), encoder.model_id, encoder.dim)
    Indexer(library, encoder, batch_size=2, decode_workers=1).index([folder])


if __name__ == "__main__":
    main()
