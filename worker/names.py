"""Every task name and Redis key seedworker uses, in one place (like arq's ``constants.py``).

Producers, the watcher, the tasks and the probes import names from here, so a renamed task or
key cannot drift between the sender and the receiver.  Everything seedworker keeps in Redis
starts with ``PREFIX`` (queues are named by settings; Celery's own keys are Celery's).
"""

from __future__ import annotations

PREFIX = "seedworker:"

# -- tasks --------------------------------------------------------------------------------------
INGEST_TASK = "seedworker.ingest"
BATCH_TASK = "seedworker.ingest_batch"
FAILURE_TASK = "seedworker.record_failure"
NORMALISE_TASK = "seedworker.normalise"
TAG_TASK = "seedworker.tag"
STORE_TASK = "seedworker.store"

#: Celery's default queue: where a producer that names no queue sends (``send_task`` without
#: ``queue=``).  Workers consume it too unless ``SEEDWORKER_CONSUME_DEFAULT_QUEUE=false``.
CELERY_DEFAULT_QUEUE = "celery"

# -- Redis keys -----------------------------------------------------------------------------------
#: Reply lists: a request's ``reply_to`` must name a list under this prefix (anything else is
#: refused: a reply must never land in a task queue or someone else's key).
REPLY_PREFIX = PREFIX + "replies:"
#: Messages that killed a worker process ``POISON_DEATHS`` times, kept for an operator (JSON).
DEAD_LETTER_KEY = PREFIX + "dead-letter"
#: Per task id: how many times running it killed a pool process (expires after a day).
DEATHS_PREFIX = PREFIX + "deaths:"
DEATHS_TTL_SECONDS = 24 * 3600
#: A message whose run killed a worker process this many times is dead-lettered, not redelivered.
POISON_DEATHS = 2
#: The secret the watcher signs its claim keys with lives in DATA_DIR under this name (0600).
CLAIM_SECRET_FILE = "claim-key.secret"  # noqa: S105 - a file name, not a secret


def reply_key(owner: str) -> str:
    """The reply list of one producer (a watcher id, ``client:<uuid>``)."""
    return REPLY_PREFIX + owner


def deaths_key(task_id: str) -> str:
    return DEATHS_PREFIX + task_id
