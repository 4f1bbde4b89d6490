"""All configuration in one pydantic-settings class, read from the environment (and `.env`).

Every knob of the product lives here so the app, the CLI and the tests agree on defaults.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

WEAK_SECRET_KEYS = {"", "changeme", "change-me", "secret", "insecure-dev-secret-change-me"}


class ConfigError(ValueError):
    """The configuration cannot be used as it is."""


class Settings(BaseSettings):
    """chatadmin configuration; environment variable names are the field names in capitals."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    mongodb_uri: str | None = Field(default=None, description="unset: start the embedded server")
    mongodb_db_name: str = "chatadmin"
    redis_url: str | None = Field(default=None, description="unset: in-process stand-in")
    redis_prefix: str = "chat:"
    chatadmin_search_mode: Literal["auto", "text", "terms"] = Field(
        default="auto", description="full-text search: auto picks text where the server has it"
    )

    chatadmin_secret_key: str | None = Field(
        default=None, description="unset: generated once per data dir (embedded default only)"
    )
    chatadmin_debug: bool = False
    chatadmin_data_dir: Path = Path(".chatadmin")
    chatadmin_log_level: str = "INFO"

    # Limits, checked by the app before every write (the embedded server does not enforce 16 MB).
    chatadmin_max_body_bytes: int = 5 * 1024 * 1024
    chatadmin_max_batch: int = 1000
    chatadmin_max_message_bytes: int = 1024 * 1024
    chatadmin_max_share_bytes: int = 4 * 1024 * 1024
    chatadmin_max_share_messages: int = 2000
    chatadmin_max_json_depth: int = 32
    # The durable spool of writes accepted while MongoDB is unreachable (<data dir>/spool).
    chatadmin_spool_dir: Path | None = None
    chatadmin_spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # Admin bodies: its forms (a message's content fits), and the login form.
    chatadmin_max_form_bytes: int = 4 * 1024 * 1024
    chatadmin_max_login_bytes: int = 16 * 1024
    # Message text longer than this is cut on the conversation page (with a link to all of it).
    chatadmin_page_text_chars: int = Field(default=20_000, ge=100)
    # Rows one admin list export may hold (checked against the rows, not the list's count).
    chatadmin_export_max_rows: int = Field(default=10_000, ge=1)
    # Images in Markdown message text: shown as links unless allowed (an image would make
    # every staff browser fetch a URL chosen by whoever wrote the message).
    chatadmin_markdown_images: bool = False
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated
    # addresses or networks); none by default, so a client cannot claim another address.
    chatadmin_trusted_proxies: str = ""
    # Seconds a client has to send a request's headers (slow-header connections are closed).
    chatadmin_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    chatadmin_shutdown_timeout_s: float = Field(default=15.0, gt=0, le=600)

    # Rate limits: messages a minute by user role, hour and day limits per user, requests a
    # minute per API key. Redis down: not enforced (one warning a minute).
    chatadmin_rate_owner_per_minute: int = 100
    chatadmin_rate_leader_per_minute: int = 75
    chatadmin_rate_manager_per_minute: int = 50
    chatadmin_rate_user_per_hour: int = 2000
    chatadmin_rate_user_per_day: int = 20000
    chatadmin_rate_key_per_minute: int = 6000
    chatadmin_redis_timeout_ms: int = Field(default=100, ge=10, le=10_000)
    # The longest the app waits for one MongoDB reply, and for a free connection, before it
    # answers 503 (or spools the writes); 0: no limit. Commands and migrations wait as needed.
    chatadmin_mongo_timeout_ms: int = Field(default=10_000, ge=0, le=600_000)
    # MongoDB connections per app process: requests beyond them wait (up to the timeout)
    # instead of piling onto a slow database.
    chatadmin_mongo_pool_size: int = Field(default=32, ge=1, le=1000)
    # Heavy writes (ingest, message appends, imports) one app process runs at a time; the
    # others wait in the app, up to the MongoDB timeout, then get 503 `busy` (api/gate.py).
    chatadmin_write_concurrency: int = Field(default=8, ge=1, le=1000)
    chatadmin_sse_heartbeat_s: float = Field(default=15.0, gt=0, le=60)

    chatadmin_cache_ttl_seconds: int = 24 * 3600
    chatadmin_context_ttl_days: int = 90
    chatadmin_connection_ttl_seconds: int = 24 * 3600
    chatadmin_sweep_interval_seconds: float = 60.0
    # A write whose journal record is this old died half-way (keep it well above the longest a
    # request may take): its counters are then recounted; the repairer looks this often.
    chatadmin_repair_after_s: float = Field(default=60.0, gt=0)
    chatadmin_repair_interval_s: float = Field(default=15.0, gt=0)

    # Retention (`manage.py retention`, docs/lifecycle.md): days per collection, 0 keeps forever.
    chatadmin_retention_conversations_days: int = Field(default=730, ge=0)
    chatadmin_retention_conversations_archive_days: int = Field(default=365, ge=0)
    chatadmin_retention_messages_days: int = Field(default=730, ge=0)
    chatadmin_retention_contexts_days: int = Field(default=90, ge=0)
    chatadmin_retention_connections_days: int = Field(default=90, ge=0)
    chatadmin_retention_analytics_days: int = Field(default=5 * 365, ge=0)
    chatadmin_retention_analytics_fold_days: int = Field(default=365, ge=0)
    chatadmin_retention_archive_dir: Path | None = Field(
        default=None, description="archives of purged documents; unset: <data dir>/archive"
    )
    chatadmin_retention_archive_keep_days: int = Field(default=30, ge=0)
    chatadmin_public_url: str = "http://127.0.0.1:8000"
    chatadmin_auto_migrate: bool | None = Field(
        default=None, description="apply pending migrations at start; default: only when embedded"
    )

    @model_validator(mode="after")
    def _refuse_weak_secret(self) -> Settings:
        key = self.chatadmin_secret_key
        if key is None or self.chatadmin_debug:
            return self
        if key.strip().lower() in WEAK_SECRET_KEYS or len(key) < 16:
            raise ConfigError(
                "CHATADMIN_SECRET_KEY is a default or too short; set it to a long random value "
                "(or set CHATADMIN_DEBUG=1 for local development)"
            )
        return self

    def secret_key(self) -> str:
        """The session-signing key: the configured one, or one generated once per data dir.

        Only the embedded default (and debug mode) may generate one; a deployment that points at
        its own MongoDB must configure the key, so every instance signs with the same key.
        """
        if self.chatadmin_secret_key:
            return self.chatadmin_secret_key
        if not (self.embedded or self.chatadmin_debug):
            raise ConfigError("CHATADMIN_SECRET_KEY must be set when MONGODB_URI is set")
        path = self.chatadmin_data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # A complete file linked into place: concurrent starters agree on one key.
            tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            tmp.unlink()
        key = path.read_text().strip()
        if len(key) < 32:
            raise ConfigError(f"{path} holds no usable key; delete it to generate a new one")
        return key

    chatadmin_secure_cookies: bool | None = Field(
        default=None, description="Secure session cookies; default: unless debug or embedded"
    )

    @property
    def secure_cookies(self) -> bool:
        """Secure cookies, except in debug mode and on the local embedded default (plain http)."""
        if self.chatadmin_secure_cookies is not None:
            return self.chatadmin_secure_cookies
        return not (self.chatadmin_debug or self.embedded)

    @property
    def auto_migrate(self) -> bool:
        return self.embedded if self.chatadmin_auto_migrate is None else self.chatadmin_auto_migrate

    def spool_dir(self) -> Path:
        return self.chatadmin_spool_dir or self.chatadmin_data_dir / "spool"

    def trusted_proxies(self) -> list[str]:
        """The configured proxy networks, each checked."""
        networks = [n.strip() for n in self.chatadmin_trusted_proxies.split(",") if n.strip()]
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ConfigError(
                    f"CHATADMIN_TRUSTED_PROXIES: {network!r} is not an address"
                ) from exc
        return networks

    @property
    def embedded(self) -> bool:
        """True when no MONGODB_URI is given and the embedded server is used."""
        return not self.mongodb_uri


def redact_url(url: str) -> str:
    """A connection URL (MongoDB, Redis) without its password, for the log."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
