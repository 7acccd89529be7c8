"""The event contract, with no I/O: CloudEvents models (``cloudevents``), the published
contract and JSON schemas (``contract``, ``schemas/``) and webhook endpoint settings
(``endpoints``).  The store and the settings point down at this package; moving events --
outbox to stream to webhooks -- is the relay's job (``worker/relay/``), and reading the
stream is the consumer's (``worker/consumer.py``).
"""
