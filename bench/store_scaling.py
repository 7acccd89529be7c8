"""Store + dedup cost against the size of the stored corpus (issue 21: "cost does not grow
with the corpus").  Run by ``python -m bench.large --store-scaling`` (``make bench-large``).

For each size (10,000 and 1,000,000 by default) and each backend (SQLite, PostgreSQL):

1. **Prefill** with a bulk loader straight into the tables the store writes, at their real
   schema (the Alembic head: FTS5 triggers on SQLite, the GIN expression index on
   PostgreSQL): documents (article texts of the bench corpus), their original bytes, tag
   rows, near-duplicate band rows and signatures, ingestion records.  Keys, hashes and
   signatures of the filler are random (distinct texts have effectively random band keys);
   SQLite takes ``executemany`` in large transactions with the FTS index rebuilt at the end,
   PostgreSQL ``COPY`` with its indexes and constraints built after the load, then ANALYZE.
   Then ``SEEDS`` real articles go through the worker's store, so near and exact copies of
   stored documents have something to match.  A prefilled database is kept (SQLite file in
   ``--dir``, PostgreSQL database ``seedworker_scale_<size>``) and reused by later runs.
2. **Measure**, in rounds that alternate the sizes: ``--docs`` new articles plus near copies
   (a word in 60 changed) and exact copies of stored ones, prepared and tagged beforehand
   (fast profile), then stored as the worker stores them (``process.store_many`` over
   groups of ``--group``: the watcher's batch task).  CPU per document of this process
   and, on PostgreSQL, of its server backends (``/proc/<pid>/stat``, when the server is on
   this machine).  Medians of the rounds, and the ratio largest/smallest.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import corpus
from bench.ceiling import _settings

SEEDS = 500  # real stored articles that near and exact copies are made of
POOL = 300  # distinct article texts the filler rows cycle through
CHUNK = 20_000  # rows per executemany / COPY flush
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Template:
    """What a stored document looks like, taken from real pipeline output."""

    texts: list[tuple[str | None, str, int, bytes]]  # (title, text, word_count, raw)
    tags: list[list[tuple[Any, ...]]]  # tag rows (columns after document_id) of each pool text


def _near_copy(data: bytes, rng: random.Random) -> bytes:
    words = data.decode().split(" ")
    for _ in range(max(1, len(words) // 60)):
        i = rng.randrange(len(words))
        words[i] += "x"
    return " ".join(words).encode()


# -- the bulk loader -----------------------------------------------------------------------------
def _rows(n: int, template: Template, seed: int) -> Any:
    """Yield, per filler document, its rows for every table: random ids, hashes and bands."""
    from worker.store.schema import story_for

    rng = random.Random(seed)  # noqa: S311 - filler data, not a secret
    bands = 21
    created = time.time() - n
    for i in range(n):
        title, text, words, raw = template.texts[i % len(template.texts)]
        doc_id = f"doc_{rng.getrandbits(128):032x}"
        sha = f"{rng.getrandbits(256):064x}"
        key = f"claim:prefill-{seed}-{i}"
        doc = {
            "id": doc_id,
            "canonical_hash": f"{rng.getrandbits(256):064x}",
            "raw_sha256": sha,
            "ingest_key": key,
            "filename": f"prefill-{i}.txt",
            "source": "inbox",
            "format": "text",
            "encoding": "utf-8",
            "title": title,
            "date": f"20{20 + i % 6}-0{1 + i % 9}-1{i % 10}",
            "language": "en",
            "word_count": words,
            "text": text,
            "metadata": "{}",
            "warnings": "[]",
            "created_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created + i)) + ".000000+00:00",
            "story_id": story_for(doc_id),
            "minhash": rng.getrandbits(4096).to_bytes(512, "little"),
        }
        band_rows = [(b, rng.getrandbits(64) - (1 << 63), doc_id) for b in range(bands)]
        outcome = json.dumps({"status": "stored", "key": key, "filename": doc["filename"], "document_id": doc_id})
        yield (
            doc,
            (sha, len(raw), raw, doc["created_at"]),
            template.tags[i % len(template.tags)],
            band_rows,
            (
                key,
                "stored",
                outcome,
                doc["created_at"],
            ),
        )


_DOC_COLUMNS = [
    "id", "canonical_hash", "raw_sha256", "ingest_key", "filename", "source", "format", "encoding", "title",
    "date", "language", "word_count", "text", "metadata", "warnings", "created_at", "story_id", "minhash",
]  # fmt: skip
_TAG_COLUMNS = ["document_id", "kind", "name", "label", "source", "score", "count", "spans", "matched", "country",
                "scheme", "code"]  # fmt: skip


def _tag_tuple(tag: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(json.dumps(tag[c]) if c == "spans" else tag[c] for c in _TAG_COLUMNS[1:])


def _prefill_sqlite(path: Path, n: int, template: Template) -> None:
    import sqlite3

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1500000")  # 1.5 GB while loading
    trigger = con.execute("SELECT sql FROM sqlite_master WHERE name='documents_fts_ai'").fetchone()[0]
    con.execute("DROP TRIGGER documents_fts_ai")
    loaded = ("blobs", "documents", "tags", "minhash_bands", "ingestions")
    indexes = con.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name IN {loaded}"  # noqa: S608
    ).fetchall()
    for name, _ in indexes:
        con.execute(f'DROP INDEX "{name}"')
    doc_sql = f"INSERT INTO documents ({','.join(_DOC_COLUMNS)}) VALUES ({','.join('?' * len(_DOC_COLUMNS))})"  # noqa: S608
    tag_sql = f"INSERT INTO tags ({','.join(_TAG_COLUMNS)}) VALUES ({','.join('?' * len(_TAG_COLUMNS))})"  # noqa: S608
    buf: dict[str, list[Any]] = {"blob": [], "doc": [], "tag": [], "band": [], "ing": []}

    def flush() -> None:
        con.executemany("INSERT INTO blobs (sha256, size, data, created_at) VALUES (?,?,?,?)", buf["blob"])
        con.executemany(doc_sql, buf["doc"])
        con.executemany(tag_sql, buf["tag"])
        con.executemany("INSERT INTO minhash_bands (band, key, document_id) VALUES (?,?,?)", buf["band"])
        con.executemany("INSERT INTO ingestions (key, status, outcome, created_at) VALUES (?,?,?,?)", buf["ing"])
        for rows in buf.values():
            rows.clear()

    con.execute("BEGIN")
    for i, (doc, blob, tags, bands, ing) in enumerate(_rows(n, template, seed=n)):
        buf["blob"].append(blob)
        buf["doc"].append(tuple(doc[c] for c in _DOC_COLUMNS))
        buf["tag"].extend((doc["id"], *t) for t in tags)
        buf["band"].extend(bands)
        buf["ing"].append(ing)
        if (i + 1) % CHUNK == 0:
            flush()
    flush()
    for _, sql in indexes:  # built once, sorted, instead of row by row
        con.execute(sql)
    con.execute("INSERT INTO documents_fts(documents_fts) VALUES ('rebuild')")
    con.execute(trigger)
    con.execute("COMMIT")
    con.execute("ANALYZE")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()


def _prefill_postgres(url: str, n: int, template: Template) -> None:
    import psycopg

    tables = ["blobs", "documents", "tags", "minhash_bands", "ingestions"]
    with psycopg.connect(url) as con:
        con.execute("SET maintenance_work_mem = '512MB'")
        con.execute("SET synchronous_commit = off")
        cons = con.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
            "WHERE (conrelid::regclass::text = ANY(%s) OR confrelid::regclass::text = ANY(%s))"
            " AND contype IN ('p','u','f')",
            [tables, tables],
        ).fetchall()
        names = {c[1] for c in cons}
        idx = con.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)", [tables]).fetchall()
        idx = [(name, sql) for name, sql in idx if name not in names]
        for table, name, _, _kind in sorted(cons, key=lambda c: c[3] != "f"):  # foreign keys first
            con.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in idx:
            con.execute(f'DROP INDEX "{name}"')
        with con.cursor() as cur:
            copies = {
                "blob": "COPY blobs (sha256, size, data, created_at) FROM STDIN",
                "doc": f"COPY documents ({','.join(_DOC_COLUMNS)}) FROM STDIN",
                "tag": f"COPY tags ({','.join(_TAG_COLUMNS)}) FROM STDIN",
                "band": "COPY minhash_bands (band, key, document_id) FROM STDIN",
                "ing": "COPY ingestions (key, status, outcome, created_at) FROM STDIN",
            }
            rows: dict[str, list[Any]] = {k: [] for k in copies}
            for doc, blob, tags, bands, ing in _rows(n, template, seed=n):
                rows["blob"].append(blob)
                rows["doc"].append([doc[c] for c in _DOC_COLUMNS])
                rows["tag"].extend((doc["id"], *t) for t in tags)
                rows["band"].extend(bands)
                rows["ing"].append(ing)
                if len(rows["doc"]) >= CHUNK:
                    _copy(cur, copies, rows)
            _copy(cur, copies, rows)
        con.commit()
        for table, name, sql, _ in sorted(cons, key=lambda c: c[3] == "f"):  # keys before foreign keys
            suffix = " NOT VALID" if sql.startswith("FOREIGN KEY") else ""
            con.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {sql}{suffix}')
            con.commit()
        for _, sql in idx:
            con.execute(sql)
            con.commit()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("ANALYZE")


def _copy(cur: Any, copies: dict[str, str], rows: dict[str, list[Any]]) -> None:
    for name, sql in copies.items():
        with cur.copy(sql) as copy:
            for row in rows[name]:
                copy.write_row(row)
        rows[name].clear()


# -- databases -----------------------------------------------------------------------------------
@dataclass
class Database:
    backend: str
    size: int
    url: str
    server_pids: set[int] = field(default_factory=set)


def _database(backend: str, size: int, workdir: Path, template: Template) -> Database:
    """The prefilled database for this size, made on first use and kept."""
    from sqlalchemy.engine import make_url

    from worker.services import ensure_schema

    if backend == "sqlite":
        path = workdir / f"scale-{size}.db"
        url = f"sqlite:///{path}"
        fresh = not path.exists()
    else:
        import psycopg

        name = f"seedworker_scale_{size}"
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            fresh = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None
            if fresh:
                admin.execute(f'CREATE DATABASE "{name}"')
    if fresh:
        settings = _settings("fast", workdir, url)
        ensure_schema(settings)
        started = time.monotonic()
        if backend == "sqlite":
            _prefill_sqlite(workdir / f"scale-{size}.db", size, template)
        else:
            _prefill_postgres(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                              size, template)  # fmt: skip
        print(f"  prefilled {backend} with {size:,} documents in {time.monotonic() - started:.0f} s", flush=True)
    return Database(backend, size, url)


def _cpu_of(pids: set[int]) -> dict[tuple[int, str], float]:
    """Seconds of CPU (user + system) each server backend used so far, keyed by pid and start
    time: a backend that ended and a pid the kernel gave to another process since are told
    apart from the backend that had it (a bare pid once counted an unrelated busy process)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[tuple[int, str], float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("postgres"):
            out[(pid, fields[19])] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _cpu_between(before: dict[tuple[int, str], float], after: dict[tuple[int, str], float]) -> float:
    """CPU the backends used between two readings (a backend born in between counts whole)."""
    return sum(seconds - before.get(key, 0.0) for key, seconds in after.items())


# -- measuring -----------------------------------------------------------------------------------
def _prepared(files: list[tuple[str, bytes]], rt: Any, run: str) -> list[Any]:
    from worker import process
    from worker.models import IngestRequest

    batches = []
    for name, data in files:
        key = f"claim:scale-{run}-{name}"
        request = IngestRequest.from_bytes(data, filename=name, source="inbox", metadata={"path": name},
                                           idempotency_key=key)  # fmt: skip
        batches.append(process.tag(process.prepare(request, key, max_bytes=rt.settings.max_file_bytes), rt.tagger))
    return batches


def _template(rt: Any) -> Template:
    from worker.store.schema import tag_values

    batches = _prepared([(f"pool-{i}.txt", corpus.article(i, seed=23)) for i in range(POOL)], rt, "pool")
    texts: list[tuple[str | None, str, int, bytes]] = []
    tags: list[list[tuple[Any, ...]]] = []
    for b in batches:
        doc = b.items[0].document
        texts.append((doc.title, doc.text, doc.word_count, b.request.raw_bytes()))
        if len(tags) < 200:
            tags.append([_tag_tuple(tag_values(t)) for t in b.items[0].tags])
    return Template(texts, tags)


def _round_files(run_seed: int, docs: int) -> list[tuple[str, bytes]]:
    rng = random.Random(run_seed)  # noqa: S311
    files = [(f"new-{i}.txt", corpus.article(i, seed=run_seed)) for i in range(docs)]
    for j in range(max(1, docs // 10)):
        files.append((f"near-{j}.txt", _near_copy(corpus.article(rng.randrange(SEEDS), seed=31), rng)))
    for j in range(max(1, docs // 30)):
        files.append((f"exact-{j}.txt", corpus.article(rng.randrange(SEEDS), seed=31)))
    rng.shuffle(files)
    return files


def _runtime(db: Database, workdir: Path) -> Any:
    from sqlalchemy import event

    from worker.runtime import Runtime

    rt = Runtime.build(_settings("fast", workdir, db.url), "redis://127.0.0.1:1/0")
    if db.backend == "postgresql":

        @event.listens_for(rt.store.engine, "connect")
        def _pid(dbapi_conn: Any, _: Any) -> None:
            db.server_pids.add(int(dbapi_conn.info.backend_pid))

    return rt


def _store_all(rt: Any, batches: list[Any], group: int) -> dict[str, int]:
    from worker import process

    seen: dict[str, int] = {}
    for i in range(0, len(batches), group):
        for result in process.store_many(batches[i : i + group], rt.store, max_bytes=rt.settings.max_file_bytes):
            for o in result.outcomes:
                kind = o.status + (f":{o.duplicate_kind}" if o.duplicate_kind else "")
                seen[kind] = seen.get(kind, 0) + 1
    return seen


def run(sizes: list[int], backends: list[str], *, docs: int, rounds: int, group: int, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"docs_per_round": docs, "rounds": rounds, "group": group, "backends": {}}
    template: Template | None = None
    for backend in backends:
        dbs, rts = [], []
        for size in sizes:
            if template is None and not _exists(backend, size, workdir):
                template = _make_template(workdir)
            db = _database(backend, size, workdir, template or Template([], []))
            rt = _runtime(db, workdir)
            if _seeds_missing(rt):
                seeds = [(f"seed-{i}.txt", corpus.article(i, seed=31)) for i in range(SEEDS)]
                _store_all(rt, _prepared(seeds, rt, "seeds"), group)
            dbs.append(db)
            rts.append(rt)
        per: dict[int, dict[str, list[float]]] = {s: {"client": [], "server": []} for s in sizes}
        for r in range(rounds):
            run_seed = random.SystemRandom().randrange(10**6, 10**9)
            batches = _prepared(_round_files(run_seed, docs), rts[0], str(run_seed))
            order = list(zip(dbs, rts, strict=True))
            for db, rt in order if r % 2 == 0 else order[::-1]:
                _store_all(rt, batches[:group], group)  # warm-up, not counted
                timed = batches[group:]
                cpu, server = time.process_time(), _cpu_of(db.server_pids)
                seen = _store_all(rt, timed, group)
                client_ms = (time.process_time() - cpu) / len(timed) * 1000
                server_ms = _cpu_between(server, _cpu_of(db.server_pids)) / len(timed) * 1000
                per[db.size]["client"].append(client_ms)
                per[db.size]["server"].append(server_ms)
                print(f"  {backend} {db.size:>9,} round {r + 1}: client {client_ms:.3f} ms/doc, "
                      f"server {server_ms:.3f} ms/doc {seen}", flush=True)  # fmt: skip
        if not rounds:
            continue
        out: dict[str, Any] = {}
        for size in sizes:
            out[str(size)] = {k: round(statistics.median(v), 3) for k, v in per[size].items()}
        small, large = str(sizes[0]), str(sizes[-1])
        for k in ("client", "server"):
            if out[small][k] > 0:
                out[f"ratio_{k}"] = round(out[large][k] / out[small][k], 2)
        both = {s: out[s]["client"] + out[s]["server"] for s in (small, large)}
        out["ratio_total"] = round(both[large] / both[small], 2)
        results["backends"][backend] = out
        for rt in rts:
            rt.close()
    return results


def _make_template(workdir: Path) -> Template:
    """Pool texts and tags from the real pipeline (fast profile), on a scratch database."""
    from worker.services import ensure_schema

    db = Database("sqlite", 0, f"sqlite:///{workdir / 'template.db'}")
    ensure_schema(_settings("fast", workdir, db.url))
    rt = _runtime(db, workdir)
    try:
        return _template(rt)
    finally:
        rt.close()


def _exists(backend: str, size: int, workdir: Path) -> bool:
    if backend == "sqlite":
        return (workdir / f"scale-{size}.db").exists()
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [f"seedworker_scale_{size}"]).fetchone()
        return row is not None


def _seeds_missing(rt: Any) -> bool:
    from sqlalchemy import select

    from worker.store.schema import Ingestion

    with rt.store.session() as s:
        return s.scalar(select(Ingestion.key).where(Ingestion.key.like("claim:scale-seeds-%")).limit(1)) is None
