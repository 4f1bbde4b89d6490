"""Connecting to MongoDB: the configured server or the embedded default, then Beanie on top.

`Database.open(settings)` is used by the app's lifespan, the CLI and the test harness alike.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from chatadmin import search
from chatadmin.embedded import EmbeddedMongo
from chatadmin.models import DOCUMENT_MODELS
from chatadmin.settings import ConfigError, Settings

log = logging.getLogger("chatadmin.db")


@dataclass
class ServerInfo:
    """What kind of server answers: real MongoDB, the embedded nx-27017, or SecantusDB."""

    kind: str
    version: str

    @property
    def lists_text_indexes(self) -> bool:
        """nx-27017 answers `$text` but leaves text indexes out of `listIndexes`."""
        return self.kind != "nx-27017"

    def label(self) -> str:
        return f"{self.kind} {self.version}"


async def server_info(client: AsyncMongoClient) -> ServerInfo:
    """Ask the server what it is: nx-27017 names itself in `buildInfo.process`, SecantusDB
    in `buildInfo.secantusVersion`; both otherwise claim a MongoDB version."""
    info = await client.admin.command("buildInfo")
    if info.get("process") == "nx_27017":
        try:
            from importlib.metadata import version

            nx_version = version("nx-27017")
        except Exception:  # pragma: no cover - metadata missing only in odd installs
            nx_version = "unknown"
        return ServerInfo("nx-27017", nx_version)
    if info.get("secantusVersion"):
        return ServerInfo("secantusdb", str(info["secantusVersion"]))
    return ServerInfo("mongodb", str(info.get("version", "unknown")))


def make_client(uri: str, timeout_ms: int = 5000) -> AsyncMongoClient:
    """An async client that returns aware UTC datetimes; a timeout in the URI wins."""
    options: dict = {"tz_aware": True, "uuidRepresentation": "standard"}
    if "serverselectiontimeoutms" not in uri.lower():
        options["serverSelectionTimeoutMS"] = timeout_ms
    return AsyncMongoClient(uri, **options)


@dataclass
class Database:
    """An open connection: client, database, server kind, and the embedded process if we own one."""

    client: AsyncMongoClient
    db: AsyncDatabase
    info: ServerInfo
    uri: str
    search_mode: str = search.TEXT
    embedded: EmbeddedMongo | None = field(default=None)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        embedded: EmbeddedMongo | None = None,
    ) -> Database:
        """Connect (starting the embedded server when no URI is set) and initialise Beanie.

        An unreachable server raises: the app does not start without its database (after it
        started, `/readyz` and the API answer 503 while the database is down).
        """
        owned = None
        uri = settings.mongodb_uri
        if not uri:
            if embedded is None:
                embedded = owned = EmbeddedMongo(settings.chatadmin_data_dir).start()
            uri = embedded.uri
        client = make_client(uri)
        try:
            info = await server_info(client)
            db = client[settings.mongodb_db_name]
            try:
                mode = await search.resolve_mode(db, settings.chatadmin_search_mode)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            search.use(mode)
            await init_beanie(
                database=db, document_models=DOCUMENT_MODELS, skip_indexes=True
            )  # indexes are made by migrations (`chatadmin.indexes`), for the search mode
        except Exception:
            await client.close()
            if owned:
                owned.stop()
            raise
        where = f"embedded, data in {embedded.data_dir}" if embedded else _redact(uri)
        log.info(
            "database: %s, db %r (%s); search: %s",
            info.label(), settings.mongodb_db_name, where, mode,
        )  # fmt: skip
        return cls(client=client, db=db, info=info, uri=uri, search_mode=mode, embedded=owned)

    async def ping(self) -> ServerInfo:
        """Ping the server."""
        await self.client.admin.command("ping")
        return self.info

    async def close(self) -> None:
        await self.client.close()
        if self.embedded:
            self.embedded.stop()


def _redact(uri: str) -> str:
    """The URI without a password."""
    if "@" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


@contextlib.asynccontextmanager
async def open_database(settings: Settings, **kwargs) -> AsyncIterator[Database]:
    """`Database.open` as an async context manager (closes, and stops what it started)."""
    database = await Database.open(settings, **kwargs)
    try:
        yield database
    finally:
        await database.close()
