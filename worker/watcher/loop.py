"""The watcher's loop: files in, ingest requests out, files moved by their outcome.

A file's life:  inbox/x.txt --(quiet: detect)--> claimed: renamed atomically into this
watcher's processing folder (claims) --> read safely (reading), sent as ``seedworker.ingest``
with the content in the message (sending) --> the worker's reply --> archived (or deleted), or
moved to the failed folder with ``x.txt.error.json`` beside it (outcomes).

Delivery is at-least-once: claims survive a watcher crash on disk and are re-sent with the
same idempotency key on restart (the store turns the repeat into a no-op), and a claim with
no reply for ``WATCH_RESEND_SECONDS`` (10 min) is re-sent too.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import redis
from celery import Celery
from pydantic import ValidationError
from watchdog.observers.api import BaseObserver

from worker.logs import get_logger
from worker.models import Reply
from worker.names import reply_key
from worker.outage import Outage
from worker.settings import Settings
from worker.watcher.claims import Claims, claim_secret
from worker.watcher.detect import Detector
from worker.watcher.outcomes import Outcomes
from worker.watcher.reading import Reader
from worker.watcher.replies import ReplyListener
from worker.watcher.roots import Roots
from worker.watcher.sending import Sender

log = get_logger("seedworker.watcher")

#: After the broker was unreachable, every claim still waiting for its reply is sent again
#: this soon (same key, so a repeat is a no-op): a message or a reply written just before
#: Redis died may be gone (AOF ``everysec``), and nothing else would send it for
#: ``WATCH_RESEND_SECONDS`` (10 min).
RESEND_AFTER_OUTAGE_SECONDS = 15.0
#: Seconds between ticks while files are waiting or in flight (replies are polled), and while
#: there is nothing at all to do (an event wakes the loop at once).
TICK = 0.05
IDLE_TICK = 0.5


@dataclass
class InboxWatcher:
    settings: Settings
    app: Celery
    redis: redis.Redis
    watcher_id: str
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.inbox = self.settings.inbox.resolve()
        self.own_dir = self.settings.processing_dir.resolve() / self.watcher_id
        self.reply_key = reply_key(self.watcher_id)
        self.broker = Outage("broker", log)
        self.wake = threading.Event()
        self.roots = Roots(self.settings, self.own_dir)
        self.claims = Claims(self.roots, claim_secret(self.settings.data_dir))
        self.reader = Reader(self.settings, self.claims)
        self.sender = Sender(self.settings, self.app, self.claims, self.reader, self.reply_key, self.broker)
        self.outcomes = Outcomes(self.settings, self.claims, self.reader, self.sender)
        self.detect = Detector(self.settings, self.roots, self.wake)
        self.replies: ReplyListener | None = None  # while run() runs

    @property
    def observer(self) -> BaseObserver | None:
        return self.detect.observer

    @property
    def mode(self) -> str:
        return self.detect.mode

    @property
    def in_flight(self) -> int:
        return len(self.claims)

    def start(self) -> None:
        self.roots.open_all()
        self.detect.start()
        for claim in self.claims.recover():
            log.info("recovering claim", file=claim.shown, key=claim.key)
            self.sender.send(claim)
        self.detect.first_scan()
        log.info("watching", inbox=str(self.inbox), mode=self.mode, watcher_id=self.watcher_id)

    def run(self) -> None:
        self.start()
        self.replies = ReplyListener(self.redis, self.reply_key, self.wake)
        self.replies.start()
        try:
            while not self.stop_event.is_set():
                self.wake.clear()
                self.tick()
                now = time.monotonic()
                self.detect.weather(now)
                self.detect.scan_if_due(now)
                self.wake.wait(self.next_wait())
        finally:
            listener, self.replies = self.replies, None
            listener.stop()  # what it took after the last tick goes back to the list
            self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        self.detect.stop()
        self.roots.close()
        log.info("watcher stopped", in_flight=self.in_flight)

    def tick(self) -> None:
        if not self._collect_replies():
            return  # the broker is down: claim and send nothing until it answers again
        self._take_ready_files()
        self.outcomes.send_settled()
        self.sender.resend_stale()

    def next_wait(self) -> float:
        """Seconds until the next tick: ``TICK``, or less when a file's quiet time ends sooner,
        so a file is taken when it is ready rather than at the next tick (latency); ``IDLE_TICK``
        with nothing noted and nothing in flight.  While the reply listener runs, a reply wakes
        the loop, so waiting for replies needs no ``TICK``: ``IDLE_TICK`` then too."""
        poll = TICK if self.replies is None else IDLE_TICK
        if self._room() == 0:
            return poll  # files wait for replies, not for their quiet time
        due = self.detect.next_due()
        if due is None:
            return poll if self.in_flight else IDLE_TICK
        return min(poll, max(0.001, due - time.monotonic()))

    def _room(self) -> int:
        return self.claims.room(self.settings.watch_max_in_flight)

    def _take_ready_files(self) -> None:
        # Back-pressure: at most WATCH_MAX_IN_FLIGHT files claimed without a reply. The rest stay
        # where they are, in the inbox and among the candidates, and are taken (oldest first) as
        # replies free room; a flood of files never becomes a flood of messages in Redis.
        room = self._room()
        if room == 0:
            return
        ready = self.detect.ready(room)
        # Claimed and sent a batch at a time: the first files of a burst go out while the
        # rest still wait in the inbox, and several small files travel in one message.
        size = self.settings.watch_batch
        for start in range(0, len(ready), size):
            claims = [c for path, cand in ready[start : start + size] if (c := self.claims.take(path, cand))]
            self.sender.send_many(claims)

    def _collect_replies(self) -> bool:
        """Finish the claims whose replies came; False while the broker does not answer."""
        try:
            replies = self.redis.rpop(self.reply_key, 200)
        except (redis.RedisError, OSError) as exc:
            self.broker.failed(str(exc), reading="replies")
            return False
        if self.broker.ok():
            self.sender.resend_soon(RESEND_AFTER_OUTAGE_SECONDS)
        listened = self.replies.take() if self.replies is not None else []
        for raw in [*listened, *(replies or [])]:  # the listener's are the older ones
            try:
                reply = Reply.model_validate_json(raw)
            except ValidationError:
                log.error("ignoring a reply that is not a seedworker reply", reply=repr(raw[:200]))
                continue
            self.outcomes.finish(reply)
        return True
