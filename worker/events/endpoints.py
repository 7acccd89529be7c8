"""Webhook endpoints as configured (``SEEDWORKER_WEBHOOKS``, a JSON list); no I/O here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from worker.events.cloudevents import TYPE_PREFIX


class WebhookEndpoint(BaseModel):
    """One HTTP endpoint events are POSTed to; ``types`` empty means every type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    secret: SecretStr = Field(description="HMAC-SHA256 key for X-Seedworker-Signature.")
    types: tuple[str, ...] = Field((), description="Event types to send (document.stored or the full type).")
    timeout: float = Field(10.0, gt=0, le=300, description="Seconds per POST.")
    name: str = Field("", max_length=120, description="Stable name in the deliveries table (default: the URL).")

    @field_validator("types")
    @classmethod
    def _full_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t if t.startswith(TYPE_PREFIX) else TYPE_PREFIX + t for t in value)

    @property
    def key(self) -> str:
        return self.name or str(self.url)

    def wants(self, event_type: str) -> bool:
        return not self.types or event_type in self.types

    def masked(self) -> dict[str, object]:
        return {**self.model_dump(mode="json", exclude={"secret"}), "secret": "********"}
