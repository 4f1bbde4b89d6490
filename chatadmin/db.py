"""Connecting to MongoDB: the configured server or the embedded default, then Beanie on top.

`Database.open(settings)` is used by the app's lifespan, the CLI and the test harness alike.

A PyMongo operation is never cancelled from outside (no `asyncio.wait_for` or `timeout()`
around one): on Python 3.11 a cancellation that lands while the driver waits out its own
server-selection wait, in the same step as another task lets go of the topology's lock, makes
the driver release a lock it no longer holds and then take it for good; every later operation
of that client waits forever (pinned in `tests/services/test_driver.py`). `within()` bounds a
wait without cancelling: the operation ends by the client's own timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from chatadmin import search
from chatadmin.embedded import EmbeddedMongo
from chatadmin.models import DOCUMENT_MODELS
from chatadmin.settings import ConfigError, Settings, redact_url

log = logging.getLogger("chatadmin.db")
T = TypeVar("T")


async def within(operation: Awaitable[T], seconds: float) -> T:
    """What `operation` answers, or TimeoutError when it takes longer than `seconds`; past that
    it goes on unawaited and ends by the client's own timeouts (it is never cancelled)."""
    task = asyncio.ensure_future(operation)
    task.add_done_callback(_retrieved)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        raise TimeoutError(f"no answer within {seconds:g} s")
    return task.result()


_END = object()


async def read_ahead(source: AsyncIterable[T], size: int = 2) -> AsyncIterator[T]:
    """`source`'s items, read by a task of its own up to `size` ahead. A consumer that stops or
    is cancelled (a streamed download whose client hangs up) never cancels the reader: it ends
    after its current item, since a PyMongo call must not be cancelled."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=size)
    wanted = True

    async def read() -> None:
        try:
            async for item in source:
                await queue.put((item, None))
                if not wanted:
                    break
            else:
                await queue.put((_END, None))
        except Exception as error:  # raised in the consumer's task
            await queue.put((_END, error))
        finally:
            with contextlib.suppress(Exception):  # a generator's own clean-up (a cursor's close)
                await getattr(source, "aclose", _nothing)()

    reader = asyncio.create_task(read())
    reader.add_done_callback(_retrieved)
    try:
        while True:
            item, error = await queue.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        # No await here (a cancelled consumer may be cancelled again at each one): emptying the
        # queue lets a reader waiting to put go on, see `wanted` and end after one more item.
        wanted = False
        while not queue.empty():
            queue.get_nowait()


async def _nothing() -> None:
    return None


def _retrieved(task: asyncio.Future) -> None:
    """Mark a left-behind operation's outcome as seen (no "exception never retrieved")."""
    if not task.cancelled():
        task.exception()


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


def make_client(
    uri: str, timeout_ms: int = 5000, *, reply_timeout_ms: int = 0, pool_size: int | None = None
) -> AsyncMongoClient:
    """An async client that returns aware UTC datetimes; options given in the URI win.

    `reply_timeout_ms` bounds the wait for each reply, for a free connection of the pool
    (`pool_size`), for a new connection's handshake and for finding the server at all: a hung
    or vanished server then costs an operation that long, not forever. A request may meet
    several operations that wait it out (the key's lookup, the write's first operation, each
    retried once by PyMongo), so its worst case is a few times `reply_timeout_ms`: up to five
    were seen in the frozen-database scenario of `bench/reliability.py`.
    (PyMongo's `timeout()` would bound the whole request, but under it a vanished server is
    looked for until the deadline rather than for `serverSelectionTimeoutMS`: every request
    then paid the full deadline when the server died. A deadline of our own around a whole write
    was tried too: under a heavy load it cancelled slow but healthy writes, sent 88 % of a
    100,000-message load to the spool and left seq gaps on the busiest threads.)
    """
    options: dict = {"tz_aware": True, "uuidRepresentation": "standard"}
    given = uri.lower()
    if "serverselectiontimeoutms" not in given:
        options["serverSelectionTimeoutMS"] = min(timeout_ms, reply_timeout_ms or timeout_ms)
    if reply_timeout_ms and "sockettimeoutms" not in given:
        options["socketTimeoutMS"] = reply_timeout_ms
    if reply_timeout_ms and "waitqueuetimeoutms" not in given:
        options["waitQueueTimeoutMS"] = reply_timeout_ms
    if reply_timeout_ms and "connecttimeoutms" not in given:  # a new connection's handshake
        options["connectTimeoutMS"] = reply_timeout_ms
    if pool_size and "maxpoolsize" not in given:
        options["maxPoolSize"] = pool_size
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
    _pinging: asyncio.Future | None = field(default=None, repr=False)

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
        client = make_client(
            uri,
            reply_timeout_ms=settings.chatadmin_mongo_timeout_ms,
            pool_size=settings.chatadmin_mongo_pool_size,
        )
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
        where = f"embedded, data in {embedded.data_dir}" if embedded else redact_url(uri)
        log.info(
            "database: %s, db %r (%s); search: %s",
            info.label(), settings.mongodb_db_name, where, mode,
        )  # fmt: skip
        return cls(client=client, db=db, info=info, uri=uri, search_mode=mode, embedded=owned)

    @contextlib.asynccontextmanager
    async def unhurried(self) -> AsyncIterator[AsyncDatabase]:
        """The same database through a client without reply timeouts, for work that may take
        long on the server (index builds of migrations run at start)."""
        client = make_client(self.uri)
        try:
            yield client[self.db.name]
        finally:
            await client.close()

    async def ping(self) -> ServerInfo:
        """Ping the server."""
        await self.client.admin.command("ping")
        return self.info

    async def ping_within(self, seconds: float) -> ServerInfo:
        """`ping()` bounded by `seconds` without cancelling it; callers that ask while a ping is
        still out share it, so a frozen server does not gather one ping per caller."""
        if self._pinging is None or self._pinging.done():
            self._pinging = asyncio.ensure_future(self.ping())
        return await within(self._pinging, seconds)

    async def close(self) -> None:
        await self.client.close()
        if self.embedded:
            self.embedded.stop()


@contextlib.asynccontextmanager
async def open_database(settings: Settings, **kwargs) -> AsyncIterator[Database]:
    """`Database.open` as an async context manager (closes, and stops what it started)."""
    database = await Database.open(settings, **kwargs)
    try:
        yield database
    finally:
        await database.close()
