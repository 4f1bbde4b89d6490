"""The command line behind `manage.py`: each command is a thin wrapper over a library function."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys

from pydantic import ValidationError
from pymongo.errors import PyMongoError

from chatadmin import search
from chatadmin.checks import run_checks
from chatadmin.db import open_database
from chatadmin.embedded import EmbeddedServerError
from chatadmin.exceptions import ChatAdminError
from chatadmin.indexes import build_search, index_drift
from chatadmin.migrations import migrate, states
from chatadmin.models import DOCUMENT_MODELS
from chatadmin.models.admin_user import ADMIN_ROLES, SCOPES
from chatadmin.services import accounts
from chatadmin.settings import ConfigError, Settings

log = logging.getLogger("chatadmin.cli")


class CommandError(Exception):
    """A command failed in a way the user can fix; printed without a traceback."""


QUIET_LIBRARIES = ("starlette_admin", "beanie", "pymongo", "asyncio", "httpx", "uvicorn")


def configure_logging(level: str) -> None:
    """Our lines at `level`; third-party INFO chatter at WARNING unless the level is DEBUG."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level.upper() != "DEBUG":
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)


def out(line: str = "") -> None:
    print(line, flush=True)


# -- commands -----------------------------------------------------------------------------------


def cmd_runserver(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    settings.secret_key()  # fail before binding the port
    if args.workers > 1 and args.reload:
        raise CommandError("--workers and --reload cannot be used together")
    if args.workers > 1 and not settings.redis_url:
        log.warning("--workers %d without REDIS_URL: each worker keeps its own real-time state "
                    "(live tails, rate limits) and sees only its own", args.workers)  # fmt: skip
    # Each worker says where it serves, once it is ready (the app learns it from here).
    os.environ["CHATADMIN_LISTEN_URL"] = f"http://{args.host}:{args.port}"
    quiet = settings.chatadmin_log_level.upper() != "DEBUG"
    uvicorn.run(
        "chatadmin.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        reload=args.reload,
        workers=args.workers,
        # uvicorn's own start-up lines and access log only with CHATADMIN_LOG_LEVEL=DEBUG
        log_level="warning" if quiet else "debug",
        access_log=not quiet,
        http="chatadmin.server:H11Protocol",  # a deadline for request headers
        proxy_headers=False,  # the app believes X-Forwarded-* only from its trusted proxies
        server_header=False,
        timeout_keep_alive=5,
        # A request that never ends (a stuck dependency) must not keep a stopping worker alive.
        timeout_graceful_shutdown=settings.chatadmin_shutdown_timeout_s,
    )
    return 0


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async with open_database(settings) as database:
        if not args.list:
            applied = await migrate(database.db)
            if not applied:
                out("No migrations to apply.")
            for rec in applied:
                out(f"Applied {rec.version} {rec.name} in {rec.execution_ms} ms")
                for change in rec.changes:
                    out(f"  {change}")
            if args.rebuild_search:
                out("Rebuilt full-text search:")
                for change in await build_search(database.db):
                    out(f"  {change}")
        out(f"Search: {search.describe(database.search_mode)}")
        out("Migrations:")
        for state in await states():
            when = f" at {state.applied_at}" if state.applied_at else ""
            out(f"  [{'x' if state.status == 'completed' else ' '}] {state.version} "
                f"{state.name} ({state.status}{when})")  # fmt: skip
        out("Index drift:")
        drifted = 0
        for model in DOCUMENT_MODELS:
            drift = await index_drift(database.db, model, database.info)
            for desc in drift.missing:
                out(f"  {drift.collection}: missing {desc}")
            for desc in drift.extra:
                out(f"  {drift.collection}: undeclared {desc}")
            drifted += not drift.ok
        if not drifted:
            out("  none")
    return 0


async def cmd_createadmin(args: argparse.Namespace, settings: Settings) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("passwords do not match")
    else:
        raise CommandError("no terminal to prompt for a password; use --password-stdin")
    async with open_database(settings) as database:
        await migrate(database.db)  # the unique index on username must exist first
        user = await accounts.create_admin_user(args.username, password, args.role, args.org)
    scope = f"org {user.org_id}" if user.org_id else "all orgs"
    out(f"Created admin user {user.username!r} with role {user.role} ({scope}).")
    return 0


async def cmd_createapikey(args: argparse.Namespace, settings: Settings) -> int:
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    async with open_database(settings) as database:
        await migrate(database.db)
        key, plaintext = await accounts.create_api_key(args.org, scopes, name=args.name)
    out(f"API key {key.key_id} for org {key.org_id} with scopes {','.join(key.scopes)}.")
    out("Store it now: it is shown once and cannot be recovered.")
    out(plaintext)
    return 0


async def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from chatadmin.seed import seed

    if args.threads < 1:
        raise CommandError("--threads must be at least 1")
    async with open_database(settings) as database:
        await migrate(database.db)
        with tqdm(total=args.threads, unit="thread", file=sys.stderr,
                  disable=args.no_progress) as bar:  # fmt: skip
            stats = await seed(args.threads, progress=bar.update)
    out(
        f"Seeded {stats.threads_created} threads ({stats.threads_skipped} already present), "
        f"{stats.messages} messages, {stats.analyses} analyses, {stats.executions} executions "
        f"in {stats.seconds:.1f} s: {stats.threads_per_second:.1f} threads/s, "
        f"{stats.messages_per_second:.0f} messages/s."
    )
    return 0


async def cmd_spool(args: argparse.Namespace, settings: Settings) -> int:
    from chatadmin.services import spooled
    from chatadmin.spool import Spool

    spool = Spool(settings.spool_dir(), settings.chatadmin_spool_max_bytes)
    if args.replay:
        async with open_database(settings):
            done = await spooled.replay(spool, settings)
        out(f"Replayed {done['records']} records from {done['segments']} segments "
            f"({done['rejected']} refused; see {spool.dir / 'rejected.jsonl'}).")  # fmt: skip
    state = spool.status()
    out(f"Spool {state['dir']}: {state['segments']} segments, {state['bytes']} bytes waiting.")
    return 0


async def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    async with open_database(settings) as database:
        findings = await run_checks(database)
    problems = [f for f in findings if f.problem]
    for f in findings:
        out(f"{'FAIL' if f.problem else 'ok  '} {f.subject}: {f.message}")
    if problems:
        raise CommandError(f"{len(problems)} problem(s) found")
    out("No problems found.")
    return 0


# -- import, export, sync (chatadmin.transfer) ----------------------------------------------


def _transfer_options(args: argparse.Namespace, settings: Settings):
    from chatadmin.models.base import CLIENT_ID_PATTERN
    from chatadmin.services import audit
    from chatadmin.transfer import Options

    for name in ("org", "user"):
        value = getattr(args, name, None)
        if value is not None and not CLIENT_ID_PATTERN.fullmatch(value):
            raise CommandError(f"--{name} {value!r} is not a valid id (letters, digits, _.:@-)")
    return Options(
        org_id=args.org,
        actor=audit.Actor("system", f"manage.py {args.command}", via="cli"),
        format=args.format,
        user_id=args.user,
        dry_run=args.dry_run,
        max_batch=settings.chatadmin_max_batch,
        max_message_bytes=settings.chatadmin_max_message_bytes,
    )


def _report(summary) -> None:
    for line in summary.lines():
        out(line)
    for issue in summary.errors:
        print(f"error: {issue}", file=sys.stderr)
    if summary.errors:
        raise CommandError(f"{len(summary.errors)} problem(s), listed above; the rest was "
                           "imported (importing again imports nothing twice)")  # fmt: skip


async def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from chatadmin import transfer

    options = _transfer_options(args, settings)
    try:
        _files, total = transfer.check_input(Path(args.path))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    async with open_database(settings) as database:
        await migrate(database.db)
        with tqdm(total=total, unit="B", unit_scale=True, desc="import", file=sys.stderr,
                  disable=args.no_progress) as bar:  # fmt: skip
            summary = await transfer.import_path(
                Path(args.path), options, progress=lambda n: bar.update(max(0, n - bar.n))
            )
    _report(summary)
    return 0


async def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime
    from pathlib import Path

    from tqdm import tqdm

    from chatadmin import transfer
    from chatadmin.clock import as_utc

    since = None
    if args.since:
        try:
            since = as_utc(datetime.fromisoformat(args.since))
        except ValueError:
            raise CommandError(f"--since {args.since!r} is not an ISO date (2024-03-01)") from None
    try:
        transfer.check_output(Path(args.output))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    async with open_database(settings) as database:
        await migrate(database.db)
        with tqdm(unit="msg", desc="export", file=sys.stderr, disable=args.no_progress) as bar:
            try:
                summary = await transfer.export(args.org, Path(args.output), fmt=args.format,
                                                since=since, thread_id=args.thread,
                                                progress=bar.update)  # fmt: skip
            except OSError as exc:
                raise CommandError(f"cannot write {args.output}: {exc}") from None
    for line in summary.lines():
        out(line)
    return 0


async def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from chatadmin import transfer

    options = _transfer_options(args, settings)
    folder = Path(args.folder)
    try:
        transfer.check_input(folder)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    database_key = f"{settings.mongodb_uri or 'embedded'}|{settings.mongodb_db_name}"
    state = Path(args.state) if args.state else transfer.default_state(
        settings.chatadmin_data_dir, args.org, folder, database_key
    )  # fmt: skip
    async with open_database(settings) as database:
        await migrate(database.db)
        with tqdm(unit="B", unit_scale=True, desc="sync", file=sys.stderr,
                  disable=args.no_progress) as bar:  # fmt: skip
            try:
                result = await transfer.sync_folder(
                    folder, options, state, progress=lambda n: bar.update(max(0, n - bar.n))
                )
            except transfer.SyncBusy as exc:
                raise CommandError(str(exc)) from None
    for line in result.lines()[:1]:
        out(line)
    _report(result.summary)
    return 0


def _since(value: str | None):
    """`--since`: an ISO date or datetime (UTC when it names no zone)."""
    from datetime import datetime

    from chatadmin.clock import as_utc

    if value is None:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        raise CommandError(f"--since {value!r} is not an ISO date such as 2024-03-01") from None


async def cmd_rollup(args: argparse.Namespace, settings: Settings) -> int:
    from chatadmin.services import rollup

    since = _since(args.since)
    async with open_database(settings) as database:
        await migrate(database.db)
        if args.repair:
            return await _repair(args.stale_after or settings.chatadmin_repair_after_s)
        reports = await rollup.rebuild_all(args.org, since, check=args.check)
    for line in rollup.describe(reports, check=args.check):
        out(line)
    differing = sum(len(r.differences) for r in reports)
    if args.check and differing:
        raise CommandError(f"{differing} bucket(s) differ from a recount; `rollup` repairs them")
    if any(r.unsettled_days for r in reports):
        raise CommandError("some days kept changing during the rebuild; run it again")
    return 0


async def _repair(stale_s: float) -> int:
    """`rollup --repair`: what the app does every few seconds by itself."""
    from chatadmin.services import repair

    done = await repair.repair_stale(stale_s)
    for d in done:
        state = f"waits: {d.waiting}" if d.waiting else f"repaired ({len(d.users)} user(s))"
        out(f"{d.org_id}: {d.records} write(s) that died half-way, {state}")
    if not done:
        out("No write died half-way: nothing to repair.")
    if any(d.waiting for d in done):
        raise CommandError("some orgs have writes in flight; run it again when they end")
    return 0


async def cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    from chatadmin.services import retention

    async with open_database(settings) as database:
        await migrate(database.db)
        if args.dry_run:
            for line in retention.describe_plan(await retention.plan(settings)):
                out(line)
            return 0
        done = await retention.run(settings, say=out)
    for line in retention.describe_run(done):
        out(line)
    return 0


async def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from chatadmin.services import retention

    async with open_database(settings) as database:
        await migrate(database.db)
        restored = await retention.restore(Path(args.archive))
    for r in restored:
        out(f"{r.org_id} {r.collection}: restored {r.restored} of {r.count} "
            f"({r.already} already there, {r.conflicts} conflicting)")  # fmt: skip
    return 0


# -- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manage.py",
        description="chatadmin: conversation history and admin for AI chat applications. "
        "With MONGODB_URI unset, commands use the embedded database under CHATADMIN_DATA_DIR.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("runserver", help="serve the app (API, admin, health checks)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    p.add_argument("--reload", action="store_true", help="restart when the code changes")
    p.add_argument("--workers", type=int, default=1,
                   help="app processes sharing the port (real-time state is shared through "
                        "Redis; default 1)")  # fmt: skip
    p.set_defaults(func=cmd_runserver)

    p = sub.add_parser("migrate", help="apply pending migrations and report index drift")
    p.add_argument("--list", action="store_true", help="only show migration state and drift")
    p.add_argument(
        "--rebuild-search",
        action="store_true",
        help="make full-text search indexes (and terms) again for this server's search mode, "
        "e.g. after moving the data to another kind of server",
    )
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("createadmin", help="create an admin user (argon2id password hash)")
    p.add_argument("--username", required=True)
    p.add_argument("--role", choices=ADMIN_ROLES, default="admin")
    p.add_argument("--org", default=None, help="limit the user to one org (default: all)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=cmd_createadmin)

    p = sub.add_parser("createapikey", help="create an API key; prints it once, last line")
    p.add_argument("--org", required=True, help="the org the key may read and write")
    p.add_argument("--scopes", default="ingest,read", help=f"comma list of {','.join(SCOPES)}")
    p.add_argument("--name", default="", help="a label for the key")
    p.set_defaults(func=cmd_createapikey)

    p = sub.add_parser("seed", help="load realistic demo data (safe to run twice)")
    p.add_argument("--threads", type=int, default=50, help="threads to create (default 50)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("check", help="check connectivity, migrations and index drift")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("spool", help="what waits in the durable spool, and replaying it")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="show what waits (the default)")
    what.add_argument("--replay", action="store_true", help="apply it now (MongoDB must be up)")
    p.set_defaults(func=cmd_spool)

    from chatadmin.transfer import EXPORT_FORMATS, IMPORT_FORMATS

    p = sub.add_parser("import", help="import an export file (or a folder of them); idempotent")
    p.add_argument("path", help="a .json / .jsonl file (gzipped or not), or a folder of them")
    p.add_argument("--org", required=True, help="the org to import into")
    p.add_argument("--format", choices=IMPORT_FORMATS, default="auto",
                   help="the file's format (default auto: recognised by its shape)")  # fmt: skip
    p.add_argument("--user", default=None,
                   help="owner of every imported thread (default: the source's user, else "
                        "'imported')")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="read and validate only; write nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="export conversations as JSONL (or Markdown), streamed")
    p.add_argument("--org", required=True, help="the org to export")
    p.add_argument("--since", default=None, help="only threads active since this ISO date")
    p.add_argument("--thread", default=None, help="only this thread")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="native",
                   help="native (imports back to the same documents), openai, anthropic or "
                        "markdown (default native)")  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="the file to write (.gz: gzipped)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("sync", help="import the new and changed files of a conversation folder")
    p.add_argument("folder", help="a folder of JSON conversation files (seed 003's backup)")
    p.add_argument("--org", required=True, help="the org to import into")
    p.add_argument("--format", choices=IMPORT_FORMATS, default="folder",
                   help="the files' format (default folder: seed 003's files)")  # fmt: skip
    p.add_argument("--user", default=None, help="owner of threads whose file names none")
    p.add_argument("--state", default=None, help="the file remembering what was seen "
                   "(default: in the data dir)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="read and validate only; write nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("rollup", help="rebuild the analytics day buckets from what they count")
    p.add_argument("--org", default=None, help="only this org (default: every org)")
    p.add_argument("--since", default=None, help="first day to rebuild, ISO (default: all)")
    p.add_argument("--check", action="store_true",
                   help="only compare and report differences (exit 1 when any)")  # fmt: skip
    p.add_argument("--repair", action="store_true",
                   help="only repair what writes that died half-way left behind (the app does "
                        "this by itself every 15 s)")  # fmt: skip
    p.add_argument("--stale-after", type=float, default=None, metavar="SECONDS",
                   help="with --repair: a write in flight this long died (default "
                        "CHATADMIN_REPAIR_AFTER_S, 60; 0 when no app is running)")  # fmt: skip
    p.set_defaults(func=cmd_rollup)

    p = sub.add_parser("retention", help="archive, then delete what the retention policy expires")
    p.add_argument("--dry-run", action="store_true",
                   help="only print what would go, per org and collection")  # fmt: skip
    p.set_defaults(func=cmd_retention)

    p = sub.add_parser("restore", help="bring back the documents of a retention archive")
    p.add_argument("archive", help="a run's archive directory, its manifest.json or one file")
    p.set_defaults(func=cmd_restore)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        if args.func is not cmd_runserver:  # maintenance may wait long for the server
            settings = settings.model_copy(update={"chatadmin_mongo_timeout_ms": 0})
        configure_logging(settings.chatadmin_log_level)
        result = args.func(args, settings)
        return asyncio.run(result) if asyncio.iscoroutine(result) else result
    except (CommandError, ChatAdminError, ConfigError, EmbeddedServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ValidationError as exc:
        print(f"error: invalid value: {exc.errors()[0].get('msg', exc)}", file=sys.stderr)
    except PyMongoError as exc:
        print(f"error: database: {exc}", file=sys.stderr)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): nothing left to say
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1
