"""The application factory: `create_app(settings)` assembles routes, middleware, handlers, lifespan.

The lifespan connects MongoDB (the embedded server when no URI is set) and Redis, initialises
Beanie with every model, applies pending migrations on the embedded default, runs the expiry
sweeper and the spool's replay loop, and closes everything on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from chatadmin import __version__, api, background, taskdump
from chatadmin.admin import mount_admin
from chatadmin.api.gate import WriteGate
from chatadmin.db import Database, within
from chatadmin.errors import EXCEPTION_HANDLERS
from chatadmin.middleware import (
    BodyLimitMiddleware,
    ClientGoneMiddleware,
    ProxyHeadersMiddleware,
    SecurityHeadersMiddleware,
)
from chatadmin.migrations import migrate
from chatadmin.models import AdminUser
from chatadmin.outage import DATABASE_DOWN, Outage
from chatadmin.realtime import events, store
from chatadmin.realtime.guard import Realtime
from chatadmin.realtime.ratelimit import RateLimiter
from chatadmin.services import accounts, repair, spooled
from chatadmin.services.sweeper import run_forever
from chatadmin.settings import Settings
from chatadmin.spool import Spool

log = logging.getLogger("chatadmin.app")
ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"
PING_TIMEOUT = 2.0
CREATEADMIN = ".venv/bin/python manage.py createadmin --username admin --role admin"


async def healthz(request: Request) -> Response:
    """200 while the process is up (and which worker process answered)."""
    return JSONResponse({"status": "ok", "pid": os.getpid()})


async def _check(coro) -> str:
    state, _ = await _probe(coro)
    return state


async def _probe(coro) -> tuple[str, Exception | None]:
    """("ok", None), or ("down: <reason>", the exception) when `coro` fails or is late (it
    bounds itself: MongoDB's with `within()`, since a PyMongo call must not be cancelled)."""
    try:
        await coro
        return "ok", None
    except Exception as exc:  # any failure means "down" for readiness; the reason is reported
        return f"down: {type(exc).__name__}", exc


async def readiness(request: Request) -> tuple[int, dict]:
    database: Database = request.app.state.database
    redis = request.app.state.redis
    mongo, error = await _probe(database.ping_within(PING_TIMEOUT))
    outage = request.app.state.outage
    if mongo == "ok":  # what the doors go by
        outage.recovered()
    elif isinstance(error, DATABASE_DOWN):  # a slow ping is a busy server, not an outage
        outage.failed()
    if isinstance(redis, store.InProcessStore):
        redis_state = "in-process"
    else:
        redis_state = await _check(asyncio.wait_for(redis.ping(), PING_TIMEOUT))
    body = {
        "mongo": mongo,
        "redis": redis_state,
        "database": database.info.label() + (" (embedded)" if database.embedded else ""),
        "db_name": database.db.name,
    }
    body["spool"] = request.app.state.spool.status()
    body["writes"] = request.app.state.write_gate.status()
    if mongo == "ok":  # writes that died half-way, waiting for their repair
        after_s = request.app.state.settings.chatadmin_repair_after_s
        body["repairs_pending"] = await _check_value(within(repair.pending(after_s), PING_TIMEOUT))
    down = [name for name in ("mongo", "redis") if body[name].startswith("down")]
    if down:
        body["down"] = down
    return (503 if down else 200), body


async def _check_value(coro):
    """What `coro` answers (bounded by `within()`), or "down: ..." when it fails or is late."""
    try:
        return await coro
    except Exception as exc:  # any failure means "down"; the reason is reported
        return f"down: {type(exc).__name__}"


async def readyz(request: Request) -> Response:
    """200 when MongoDB and Redis answer; 503 naming what is down."""
    status, body = await readiness(request)
    return JSONResponse(body, status_code=status)


async def index(request: Request) -> Response:
    """A landing page: what this server is, and where to go."""
    status, body = await readiness(request)
    no_staff = False
    if body["mongo"] == "ok":
        with contextlib.suppress(Exception):  # the page shows the database as down instead
            no_staff = await within(AdminUser.find_one({}), PING_TIMEOUT) is None
    templates: Jinja2Templates = request.app.state.templates
    context = {
        "ready": body,
        "ready_status": status,
        "version": __version__,
        "no_staff": no_staff,
        "createadmin": CREATEADMIN,
        "min_password": accounts.MIN_PASSWORD_LENGTH,
    }
    return templates.TemplateResponse(request, "index.html", context)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    given = app.state.database
    database = given or await Database.open(settings)
    app.state.database = database
    if settings.auto_migrate:
        async with database.unhurried() as db:
            applied = await migrate(db)
        if applied:
            log.info("applied migrations: %s", ", ".join(r.version for r in applied))
    sweeper = asyncio.create_task(run_forever(settings.chatadmin_sweep_interval_seconds))
    repairer = asyncio.create_task(
        repair.run_forever(settings.chatadmin_repair_interval_s, settings.chatadmin_repair_after_s)
    )
    replayer = asyncio.create_task(
        spooled.run_forever(app.state.spool, settings, database, app.state.outage)
    )
    previous = events.install(app.state.realtime)
    dumps_tasks = taskdump.install()
    listen = os.environ.get("CHATADMIN_LISTEN_URL")
    if listen:  # set by `manage.py runserver`
        log.info("ready: open %s/ (admin at %s/admin/, API docs at %s/api/v1/docs)",
                 listen, listen, listen)  # fmt: skip
    try:
        yield
    finally:
        if dumps_tasks:
            taskdump.uninstall()
        events.install(previous)
        await background.stop((sweeper, repairer, replayer))
        app.state.spool.seal()  # what this process spooled is ready for whoever replays next
        await app.state.redis.aclose()
        if app.state.realtime.blocking is not app.state.redis:
            await app.state.realtime.blocking.aclose()
        if given is None:
            await database.close()
            app.state.database = None


def create_app(settings: Settings | None = None, database: Database | None = None) -> Starlette:
    """Build the ASGI app for `settings` (read from the environment when omitted).

    An embedding program may pass a `database` it already opened; the app then uses it and
    leaves closing it to the caller.
    """
    settings = settings or Settings()
    settings.secret_key()  # refuse to start without a usable key
    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Mount("/api/v1", routes=api.routes()),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(
        debug=settings.chatadmin_debug,
        routes=routes,
        middleware=[
            Middleware(ClientGoneMiddleware),
            Middleware(ProxyHeadersMiddleware, settings=settings),
            Middleware(SecurityHeadersMiddleware),
            Middleware(BodyLimitMiddleware, settings=settings),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.redis = store.connect(settings)
    app.state.realtime = Realtime(
        app.state.redis, settings.redis_prefix, store.connect_blocking(settings, app.state.redis)
    )
    app.state.limiter = RateLimiter(app.state.realtime, settings)
    app.state.outage = Outage()
    timeout_ms = settings.chatadmin_mongo_timeout_ms
    app.state.write_gate = WriteGate(
        settings.chatadmin_write_concurrency, timeout_ms / 1000 if timeout_ms else None
    )
    app.state.spool = Spool(settings.spool_dir(), settings.chatadmin_spool_max_bytes)
    mount_admin(app, settings, app.state.redis)
    app.state.templates = Jinja2Templates(directory=TEMPLATES_DIR)
    return app
