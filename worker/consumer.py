"""The consumer API for your programs: ``from worker.consumer import consume``.

See ``examples/consume_events.py`` and docs/events.md.
"""

from __future__ import annotations

from worker.events.cloudevents import CloudEvent
from worker.events.consumer import ConsumeStats, Handler, ReceivedEvent, consume, dead_letter_stream_for

__all__ = ["CloudEvent", "ConsumeStats", "Handler", "ReceivedEvent", "consume", "dead_letter_stream_for"]
