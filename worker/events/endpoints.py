"""Webhook endpoints as configured (``SEEDWORKER_WEBHOOKS``, a JSON list); no I/O here."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from worker.events.cloudevents import TYPE_PREFIX

#: Standard Webhooks secrets: ``whsec_`` + base64 of the key (24 to 64 bytes recommended).
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a password
#: Headers seedworker sets on every delivery; an endpoint's own ``headers`` may not replace them.
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "user-agent"})
_RESERVED_PREFIXES = ("webhook-", "x-seedworker-")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token


class WebhookEndpoint(BaseModel):
    """One HTTP endpoint events are POSTed to; ``types`` empty means every type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    secret: SecretStr = Field(
        description="Signing key: whsec_<base64> (Standard Webhooks) or any other string (its UTF-8 bytes)."
    )
    types: tuple[str, ...] = Field((), description="Event types to send (document.stored or the full type).")
    timeout: float = Field(10.0, gt=0, le=300, description="Seconds per POST.")
    name: str = Field(
        "",
        max_length=120,
        description="Stable name in the deliveries table, metrics and logs (default: host-<hash of the URL>).",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description='Extra request headers, e.g. {"Authorization": "Bearer …"}; masked.'
    )

    @field_validator("types")
    @classmethod
    def _full_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t if t.startswith(TYPE_PREFIX) else TYPE_PREFIX + t for t in value)

    @field_validator("secret")
    @classmethod
    def _decodable_secret(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if not raw:
            raise ValueError("the webhook secret is empty")
        if raw.startswith(SECRET_PREFIX):
            _decode_whsec(raw)
        return value

    @field_validator("name")
    @classmethod
    def _no_url_as_name(cls, value: str) -> str:
        if "://" in value or "?" in value:
            raise ValueError("a webhook name is shown in logs, metrics and status: use a word, not a URL")
        return value

    @field_validator("headers")
    @classmethod
    def _own_headers_only(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for header in value:
            low = header.lower()
            if not _HEADER_NAME.match(header):
                raise ValueError(f"not a valid HTTP header name: {header!r}")
            if low in RESERVED_HEADERS or low.startswith(_RESERVED_PREFIXES):
                raise ValueError(f"header {header!r} is set by seedworker and cannot be replaced")
        return value

    @property
    def key(self) -> str:
        """The endpoint's name where it is stored and shown; never its URL (tokens hide in paths and queries)."""
        return self.name or default_name(str(self.url))

    @property
    def signing_key(self) -> bytes:
        """The HMAC key: the decoded bytes of a ``whsec_`` secret, else the secret's UTF-8 bytes."""
        raw = self.secret.get_secret_value()
        return _decode_whsec(raw) if raw.startswith(SECRET_PREFIX) else raw.encode()

    def wants(self, event_type: str) -> bool:
        return not self.types or event_type in self.types

    def masked(self) -> dict[str, object]:
        shown = self.model_dump(mode="json", exclude={"secret", "headers"})
        return {
            **shown,
            "url": mask_webhook_url(str(self.url)),
            "secret": "********",
            "headers": dict.fromkeys(self.headers, "********"),
        }


def default_name(url: str) -> str:
    """``host[:port]-<8 hex of the URL's SHA-256>``: stable, distinct per URL, and no token in it."""
    parts = urlsplit(url)
    host = parts.hostname or "endpoint"
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{host}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def _decode_whsec(raw: str) -> bytes:
    try:
        key = base64.b64decode(raw.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a whsec_ webhook secret must be base64 after the prefix") from exc
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def mask_webhook_url(url: str) -> str:
    """Scheme, host and port of a webhook URL; its path and query, where tokens live, masked
    (``https://h/hooks/T0KEN?key=x`` -> ``https://h/****``), and any user or password too."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if port:
        host = f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        host = f"****@{host}"
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment
    return urlunsplit((parts.scheme, host, "/****" if hidden else parts.path, "", ""))


def display_name(key: str) -> str:
    """An endpoint key as logs, metrics and status may show it (old rows were keyed by the full URL)."""
    return mask_webhook_url(key) if "://" in key else key
