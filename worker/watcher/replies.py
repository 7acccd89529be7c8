"""The reply listener: the watcher's replies, waited for in a thread of its own.

While the watcher's loop runs, a thread waits for replies (BRPOP, ``REPLY_WAIT_SECONDS`` at a
time) and wakes the loop when one comes, so the loop no longer reads the reply list every tick
only to find it empty (issue 21: those reads and the ticks around them were about a quarter of
the watcher's CPU during a burst).  The loop still reads the list itself on each tick it makes
(``InboxWatcher._collect_replies``): that read reports a broker outage, as before.
"""

from __future__ import annotations

import threading

import redis

from worker.logs import get_logger

log = get_logger("seedworker.watcher")

#: Whole seconds: a fractional BRPOP timeout needs Redis 6.
REPLY_WAIT_SECONDS = 1
#: After a Redis error the listener waits this long before it tries again.
ERROR_PAUSE_SECONDS = 0.5


class ReplyListener:
    """Waits for the watcher's replies in a thread of its own and wakes the loop with them.

    Replies it took are handed to the loop by ``take``; ones still held when it stops go back to
    the end of the list they came from, so the next reader (a restarted watcher) gets them.
    Redis errors are left to the loop's own read of the list, which reports the outage."""

    def __init__(self, client: redis.Redis, key: str, wake: threading.Event) -> None:
        self.client, self.key, self.wake = client, key, wake
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._held: list[bytes] = []
        self._thread = threading.Thread(target=self._run, name="seedworker-replies", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=REPLY_WAIT_SECONDS + 5)
        left = self.take()
        if left:
            try:
                self.client.rpush(self.key, *reversed(left))  # the oldest back at the popping end
            except (redis.RedisError, OSError) as exc:
                log.warning("replies not handed back: the claims are re-sent on restart", error=str(exc))

    def take(self) -> list[bytes]:
        with self._lock:
            held, self._held = self._held, []
        return held

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                got = self.client.brpop([self.key], timeout=REPLY_WAIT_SECONDS)
            except (redis.RedisError, OSError):
                self.wake.set()  # the loop reads the list itself and reports the outage
                self._stop.wait(ERROR_PAUSE_SECONDS)
                continue
            if got is not None:
                with self._lock:
                    self._held.append(got[1])
                self.wake.set()
