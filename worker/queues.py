"""Which queues hold messages, and whether a seedworker worker consumes them.

A producer that sends to a queue no worker consumes (Celery's default ``celery`` with
``SEEDWORKER_CONSUME_DEFAULT_QUEUE=false``, a misspelt ``queue=``) loses nothing, but its
messages wait unseen.  So the probes (``seedworker status``, ``health``, ``/metrics``) look at
every queue declared on the broker, not only the configured ones: kombu's Redis transport keeps
one set ``_kombu.binding.<exchange>`` per exchange whose members end with the queue name.
Celery's own fanout and reply exchanges (events, remote control) are not task queues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.names import PREFIX
from worker.settings import Settings

BINDING_PREFIX = "_kombu.binding."
PERMANENT_PREFIX = "_kombu.binding_permanent."
SEPARATOR = "\x06\x16"  # kombu's separator inside a binding member and a priority queue's name
PRIORITY_STEPS = (3, 6, 9)  # kombu's default priority steps besides 0 (the plain list)


@dataclass(frozen=True)
class QueueDepth:
    name: str
    depth: int
    consumed: bool  # a seedworker worker consumes it (by configuration)


def _text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _is_task_queue(name: str) -> bool:
    return bool(name) and not name.startswith(("_kombu.", "unacked", PREFIX)) and not name.endswith(".pidbox")


def declared_queues(client: Any) -> set[str]:
    """Names of the task queues declared on this Redis database, or holding messages.

    Declared: the members of kombu's binding sets (``_kombu.binding.<exchange>`` and, for
    durable queues, ``_kombu.binding_permanent.<exchange>``).  Holding messages: every list
    outside seedworker's own keys and kombu's bookkeeping (a priority list ``q\x06\x163``
    counts as ``q``), so a message is seen even where no binding names its queue.
    """
    names: set[str] = set()
    for pattern in (BINDING_PREFIX + "*", PERMANENT_PREFIX + "*"):
        for raw in client.scan_iter(match=pattern, count=200):
            key = _text(raw)
            exchange = key.split(".", 2)[2] if key.count(".") >= 2 else ""
            if exchange == "celeryev" or exchange.endswith(".pidbox"):
                continue
            names.update(_text(member).split(SEPARATOR)[-1] for member in client.smembers(raw))
    for raw in client.scan_iter(count=500, _type="list"):
        names.add(_text(raw).split(SEPARATOR)[0])
    return {name for name in names if _is_task_queue(name)}


def queue_depths(client: Any, settings: Settings) -> list[QueueDepth]:
    """Every configured or declared queue with the messages waiting in it (all priorities)."""
    consumed = {*settings.consumed_queues, settings.webhook_queue}  # the webhook queue: its own worker
    names = sorted(consumed | declared_queues(client))
    pipe = client.pipeline()
    for name in names:
        pipe.llen(name)
        for step in PRIORITY_STEPS:
            pipe.llen(f"{name}{SEPARATOR}{step}")
    counts = pipe.execute()
    width = 1 + len(PRIORITY_STEPS)
    return [
        QueueDepth(name, sum(int(n) for n in counts[i * width : (i + 1) * width]), name in consumed)
        for i, name in enumerate(names)
    ]


def unconsumed_problem(depths: list[QueueDepth]) -> str | None:
    """One line for ``health`` when messages wait where no seedworker worker looks."""
    waiting = [q for q in depths if not q.consumed and q.depth]
    if not waiting:
        return None
    shown = ", ".join(f"{q.depth} in '{q.name}'" for q in waiting)
    return f"messages wait in queues no seedworker worker consumes: {shown} (send to SEEDWORKER_QUEUE)"
