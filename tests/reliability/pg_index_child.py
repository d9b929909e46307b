"""Run in a subprocess by the PostgreSQL tests: index a folder into a shared library, then hang
inside the transaction of a chosen batch (its generation bumped, the row lock held).

    python pg_index_child.py MODEL DATA FOLDER BATCH_SIZE HANG_AT_BATCH MARKER

GALLERY_APP_LIBRARY holds the database URL. Batches before HANG_AT_BATCH commit normally;
batch HANG_AT_BATCH writes MARKER and blocks mid-transaction, so the parent can SIGKILL it.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from gallery_app.core.embeddings import SiglipEncoder
from gallery_app.core.indexer import Indexer
from gallery_app.core.library import Library
from gallery_app.core.pg_catalog import PgCatalog


def main() -> None:
    model, data, folder, batch, hang_at, marker = sys.argv[1:7]
    real_bump = PgCatalog._bump
    batches = 0

    def bump_then_hang(self: PgCatalog, conn: Any, key: str) -> int:
        nonlocal batches
        value = real_bump(self, conn, key)
        if key == "generation" and conn.info.transaction_status != 0:  # inside a batch
            if batches == int(hang_at):
                Path(marker).write_text(str(batches), encoding="utf-8")
                threading.Event().wait()  # until SIGKILL
            batches += 1
        return value

    PgCatalog._bump = bump_then_hang  # type: ignore[method-assign]
    encoder = SiglipEncoder.load(model, device="cpu")
    library = Library(Path(data), encoder.model_id, encoder.dim)
    Indexer(library, encoder, batch_size=int(batch)).index([folder])


if __name__ == "__main__":
    main()
