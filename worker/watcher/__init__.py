"""The watched folder, as a package of its jobs (issue 20):

* ``detect``    watchdog's events and scans of the inbox; when a noted file is ready
* ``observer``  watchdog's inotify observer with the watcher's move pairing and overflow hook
* ``claims``    taking a file by one atomic rename into the watcher's folder; recovery on restart
* ``reading``   reading a claimed file safely (no links, no FIFOs, never over the limit)
* ``sending``   the one send path (shared with ``worker.client``) and the watcher's messages
* ``outcomes``  replies: files to archive/ or failed/ with their ``.error.json``
* ``replies``   the reply listener: waits for replies in a thread and wakes the loop
* ``loop``      ``InboxWatcher``, which runs them
* ``roots``     handles on the inbox, the processing folder, archive/ and failed/

The names below stay importable from ``worker.watcher``; they are loaded on first use, so a
producer that needs only ``worker.watcher.sending`` does not load watchdog.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.watcher.claims import Claim, claim_secret, claim_token, display_name
    from worker.watcher.detect import EVENT_FILTER, Candidate, is_ignored
    from worker.watcher.loop import RESEND_AFTER_OUTAGE_SECONDS, InboxWatcher
    from worker.watcher.observer import MOVE_PAIRING_SECONDS
    from worker.watcher.outcomes import REPORT_SUFFIX
    from worker.watcher.sending import BATCH_MAX_BYTES, batch_argsrepr

_WHERE = {
    "Claim": "claims",
    "claim_secret": "claims",
    "claim_token": "claims",
    "display_name": "claims",
    "EVENT_FILTER": "detect",
    "Candidate": "detect",
    "is_ignored": "detect",
    "RESEND_AFTER_OUTAGE_SECONDS": "loop",
    "InboxWatcher": "loop",
    "MOVE_PAIRING_SECONDS": "observer",
    "REPORT_SUFFIX": "outcomes",
    "BATCH_MAX_BYTES": "sending",
    "batch_argsrepr": "sending",
}

__all__ = [
    "BATCH_MAX_BYTES",
    "EVENT_FILTER",
    "MOVE_PAIRING_SECONDS",
    "REPORT_SUFFIX",
    "RESEND_AFTER_OUTAGE_SECONDS",
    "Candidate",
    "Claim",
    "InboxWatcher",
    "batch_argsrepr",
    "claim_secret",
    "claim_token",
    "display_name",
    "is_ignored",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'worker.watcher' has no attribute {name!r}")
    return getattr(importlib.import_module(f"worker.watcher.{module}"), name)
