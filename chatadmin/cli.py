"""The command line behind `manage.py`: each command is a thin wrapper over a library function."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
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
    uvicorn.run(
        "chatadmin.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        reload=args.reload,
        workers=args.workers,
        log_level=settings.chatadmin_log_level.lower(),
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        logging.basicConfig(
            level=settings.chatadmin_log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
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
