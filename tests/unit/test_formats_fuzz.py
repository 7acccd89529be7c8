"""Damaged copies of every sample of the news and office formats (cut short, bytes flipped,
pieces deleted or repeated) fail with a typed reason, never with another exception, and
quickly.  Seeded, so a failure is reproducible."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from worker.errors import InputError
from worker.pipeline.normalise import normalise_records

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "formats"
NAMES = sorted(
    p.name for p in SAMPLES.iterdir() if p.suffix in (".json", ".xml", ".rss", ".atom", ".eml", ".pdf", ".docx", ".odt")
)
CASES = 120


def _damaged(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    match rng.randrange(4):
        case 0:
            del data[rng.randrange(1, len(data)) :]
        case 1:
            for _ in range(rng.randrange(1, 10)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        case 2:
            start = rng.randrange(len(data))
            del data[start : start + rng.randrange(1, 200)]
        case _:
            at = rng.randrange(len(data))
            data[at:at] = data[rng.randrange(len(data)) :][:100]
    return bytes(data)


@pytest.mark.parametrize("name", NAMES)
def test_damaged_copies_fail_typed_and_fast(name: str) -> None:
    raw = (SAMPLES / name).read_bytes()
    rng = random.Random(f"seedworker:{name}")
    for case in range(CASES):
        data = _damaged(raw, rng)
        started = time.process_time()
        try:
            results = normalise_records(data, filename=name)
        except Exception as exc:  # pragma: no cover - the failure being tested for
            pytest.fail(f"case {case}: {type(exc).__name__}: {exc} (input {data[:200]!r}...)")
        assert all(isinstance(r, InputError) or r.text for _, r in results)
        assert time.process_time() - started < 5, f"case {case} took {time.process_time() - started:.1f} s"
