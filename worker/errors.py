"""One exception tree for seedworker.

``SeedworkerError`` is the root.  Two families matter to the tasks:

* ``InputError`` -- the document itself is bad.  Never retried.  Each subclass has a stable
  ``reason`` code that ends up in the ``document.failed`` event, in the ``.error.json`` file
  beside the failed original and in the README's table of reason codes.
* ``RetryableError`` -- infrastructure is unavailable (database locked or down, broker gone).
  The task retries with backoff; the document is not failed.

Tasks decide retry-or-fail by type, never by message text.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SeedworkerError(Exception):
    """Base of every error seedworker raises on purpose."""


class ConfigError(SeedworkerError):
    """Settings, taxonomy or deployment files are invalid; raised at start, loudly."""


#: The exit code of a process stopped by a ConfigError (and of a usage error, as click's):
#: ``seedworker run`` stops instead of restarting a child that exits with it.
EXIT_CONFIG = 2


class StartRefused(SeedworkerError):
    """A process ``seedworker run`` needs refused to start; its own message said why."""


class InstanceNotFound(SeedworkerError):
    """A command that only reads found no seedworker instance (it never creates one)."""


class AlreadyRunning(SeedworkerError):
    """``seedworker run`` found another one holding the data directory's lock."""


class InputError(SeedworkerError):
    """The input cannot become a document.  ``reason`` is a stable machine-readable code."""

    reason: ClassVar[str] = "invalid_input"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "message": self.message, "details": self.details}


class EmptyDocument(InputError):
    """The file is empty or holds only whitespace."""

    reason = "empty"


class BinaryContent(InputError):
    """The content is binary (NUL bytes or no text encoding fits)."""

    reason = "binary"


class TooLarge(InputError):
    """The file is larger than SEEDWORKER_MAX_FILE_BYTES, holds over 10,000 records, or inflates past a limit."""

    reason = "too_large"


class UndecodableText(InputError):
    """The bytes could not be decoded as text in any supported encoding."""

    reason = "undecodable"


class InvalidJSON(InputError):
    """A .json/.jsonl file (or line) does not parse as JSON."""

    reason = "invalid_json"


class MissingText(InputError):
    """A JSON document has no text/body/content field."""

    reason = "missing_text"


class NoExtractableText(InputError):
    """HTML, another markup, an email or a PDF with no extractable text (a scanned PDF has no text layer)."""

    reason = "no_text_extracted"


class InvalidXML(InputError):
    """A NewsML-G2, RSS/Atom or Office XML part is not well-formed XML."""

    reason = "invalid_xml"


class UnsafeXML(InputError):
    """XML with entity declarations or external references (billion laughs, XXE); never expanded."""

    reason = "unsafe_xml"


class CorruptDocument(InputError):
    """A PDF, DOCX, ODT or email that cannot be read (damaged, or not what its name says)."""

    reason = "corrupt_document"


class EncryptedDocument(InputError):
    """A password-protected PDF or Office file; seedworker has no password to open it."""

    reason = "encrypted"


class TooSlow(InputError):
    """Reading the file went over its format's time budget (damaged or crafted to be slow)."""

    reason = "too_slow"


class SeveralDocuments(InputError):
    """``normalise()`` was given a feed, news message or email that holds several documents."""

    reason = "several_documents"


class InvalidRequest(InputError):
    """An ingest request from a producer failed validation."""

    reason = "invalid_request"


class UnreadableFile(InputError):
    """The watcher could not read the file (permissions, vanished, not a regular file)."""

    reason = "unreadable"


class UnsafePath(InputError):
    """A symlink or path that would make seedworker read outside the inbox."""

    reason = "unsafe_path"


class Superseded(InputError):
    """A file changed after it was sent: the document stored from it is partial (its final content is sent again)."""

    reason = "superseded"


class WorkerLost(InputError):
    """Processing this input killed a worker process twice; the message is in the dead-letter list."""

    reason = "worker_lost"


class DocumentFailed(SeedworkerError):
    """A task's input ended as a failed document; raised last, after its outcome, event and
    reply are committed, so that Flower counts and shows the task as failed.  Never retried
    and never redelivered (the message is acknowledged on failure)."""


class RetryableError(SeedworkerError):
    """A dependency is unavailable; the same work may succeed later."""


class StoreUnavailable(RetryableError):
    """The database is locked or unreachable."""


class BrokerUnavailable(RetryableError):
    """The Redis broker is unreachable."""


class NotEnoughTrainingData(SeedworkerError, ValueError):
    """Too few labelled documents (or labels) to train the ``auto`` topic model yet; a
    ``ValueError`` too, for callers written before it existed."""


class LeaseLost(SeedworkerError):
    """Another publisher took the outbox publisher's lease while this one was busy; nothing
    was appended (worker/relay/publisher.py).  The publisher stands by and starts over."""


#: Every reason code a ``document.failed`` event may carry, with a one-line meaning.
#: ``internal_error`` is the code for a bug: an exception that is not an ``InputError``
#: after retries are exhausted.
REASON_CODES: dict[str, str] = {
    cls.reason: (cls.__doc__ or cls.__name__).strip().splitlines()[0]
    for cls in (
        EmptyDocument,
        BinaryContent,
        TooLarge,
        UndecodableText,
        InvalidJSON,
        MissingText,
        NoExtractableText,
        InvalidXML,
        UnsafeXML,
        CorruptDocument,
        EncryptedDocument,
        TooSlow,
        SeveralDocuments,
        InvalidRequest,
        UnreadableFile,
        UnsafePath,
        Superseded,
        WorkerLost,
    )
}
REASON_CODES["internal_error"] = "Processing failed after all retries (a bug or a lasting outage)."
