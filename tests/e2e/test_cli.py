"""manage.py end to end: every command in a process of its own against the test servers
(`runner`)."""

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from pymongo import MongoClient

from chatadmin.embedded import free_port
from chatadmin.migrations import available

VERSIONS = [version for version, _ in available()]  # every migration the package ships

PASSWORD = "correct horse battery staple"
SUBCOMMAND_OPTIONS = {
    "runserver": ["--host", "--port", "--reload"],
    "migrate": ["--list"],
    "createadmin": ["--username", "--role", "--org", "--password-stdin"],
    "createapikey": ["--org", "--scopes", "--name"],
    "seed": ["--threads", "--no-progress"],
    "check": [],
    "rollup": ["--org", "--since", "--check", "--repair"],
    "retention": ["--dry-run"],
    "restore": [],
}
SEEDED = ["chat_sessions", "chat_messages", "analyses", "executions", "audit_logs", "users"]


@pytest.fixture
def mongo(settings, runner):
    """A sync pymongo handle on the runner's database."""
    with MongoClient(settings.mongodb_uri) as client:
        yield client[runner.db_name]


def assert_clean_error(result, *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


def _index_name(collection, key: dict) -> str:
    for name, spec in collection.index_information().items():
        if dict(spec["key"]) == key:
            return name
    raise AssertionError(f"no index on {key} in {collection.name}")


# -- --help ------------------------------------------------------------------------------------


@pytest.mark.one_server
def test_program_help_lists_every_command(runner):
    result = runner("--help", real=True)  # `python manage.py`, from scratch
    assert result.returncode == 0, result.stderr
    assert "usage: manage.py" in result.stdout
    for command in SUBCOMMAND_OPTIONS:
        assert command in result.stdout


@pytest.mark.one_server
@pytest.mark.parametrize("command", sorted(SUBCOMMAND_OPTIONS))
def test_subcommand_help_mentions_its_options(runner, command):
    result = runner(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: manage.py {command}" in result.stdout
    for option in SUBCOMMAND_OPTIONS[command]:
        assert option in result.stdout


@pytest.mark.one_server
def test_unknown_command_is_a_usage_error(runner):
    result = runner("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "Traceback" not in result.stderr


# -- migrate -----------------------------------------------------------------------------------


def test_migrate_applies_once_then_reports_nothing_to_apply(runner, mongo):
    first = runner("migrate")
    assert first.returncode == 0, first.stderr
    applied = r"^Applied 0001 initial collections and indexes in \d+ ms$"
    assert re.search(applied, first.stdout, re.M)
    assert "created collection chat_messages" in first.stdout
    assert "[x] 0001" in first.stdout
    assert re.search(r"Index drift:\n  none", first.stdout)
    assert "chat_messages" in mongo.list_collection_names()
    assert re.search(
        r"^Applied 0002 single-field indexes for cross-org lists and id lookups", first.stdout, re.M
    )
    assert re.search(r"^Applied 0003 full-text search for the server's search mode", first.stdout,
                     re.M)  # fmt: skip
    assert re.search(r"^Applied 0004 retention runs and folded month buckets", first.stdout, re.M)
    assert re.search(r"^Applied 0005 document ids from org and client id", first.stdout, re.M)
    records = sorted(mongo.migrations.find(), key=lambda r: r["version"])
    assert [(r["version"], r["status"]) for r in records] == [(v, "completed") for v in VERSIONS]
    assert re.search(r"^Search: (text|terms) \(", first.stdout, re.M)

    second = runner("migrate")
    assert second.returncode == 0, second.stderr
    assert "No migrations to apply." in second.stdout
    assert "Applied" not in second.stdout
    assert all(f"[x] {v}" in second.stdout for v in VERSIONS)
    assert mongo.migrations.count_documents({}) == len(VERSIONS)


def test_migrations_started_together_on_a_fresh_database_run_once(runner, mongo):
    """Workers that start together with auto-migrate: each migration is applied by one."""
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda _: runner("migrate"), range(3)))
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr[-2000:] for r in runs]
    applied = [line for r in runs for line in r.stdout.splitlines() if line.startswith("Applied ")]
    versions = VERSIONS
    assert sorted(line.split()[1] for line in applied) == versions
    records = sorted(mongo.migrations.find(), key=lambda r: r["version"])
    assert [(r["version"], r["status"]) for r in records] == [(v, "completed") for v in versions]
    assert mongo.migrations_lock.count_documents({}) == 0


def test_migrate_list_shows_pending_then_applied_without_applying(runner, mongo):
    before = runner("migrate", "--list")
    assert before.returncode == 0, before.stderr
    assert "[ ] 0001 initial collections and indexes (pending)" in before.stdout
    assert "Applied" not in before.stdout and "No migrations to apply." not in before.stdout
    assert mongo.migrations.count_documents({}) == 0

    assert runner("migrate").returncode == 0
    after = runner("migrate", "--list")
    assert after.returncode == 0, after.stderr
    completed = r"\[x\] 0001 initial collections and indexes \(completed at \S+\)"
    assert re.search(completed, after.stdout)
    assert "Applied" not in after.stdout


# -- createadmin -------------------------------------------------------------------------------


def test_createadmin_stores_an_argon2id_hash_only(runner, mongo):
    assert runner("migrate").returncode == 0
    result = runner(
        "createadmin", "--username", "x", "--role", "support", "--org", "acme",
        "--password-stdin", input=PASSWORD + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Created admin user 'x' with role support (org acme)." in result.stdout
    users = list(mongo.admin_users.find({"username": "x"}))
    assert len(users) == 1
    user = users[0]
    assert user["role"] == "support" and user["org_id"] == "acme" and user["is_active"] is True
    assert user["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in str(user)
    assert PASSWORD not in result.stdout + result.stderr


def test_createadmin_without_org_is_for_all_orgs(runner, mongo):
    assert runner("migrate").returncode == 0
    result = runner("createadmin", "--username", "root", "--password-stdin", input=PASSWORD)
    assert result.returncode == 0, result.stderr
    assert "role admin (all orgs)" in result.stdout
    user = mongo.admin_users.find_one({"username": "root"})
    assert user["role"] == "admin" and user.get("org_id") is None


def test_createadmin_duplicate_username_fails_cleanly(runner, mongo):
    assert runner("migrate").returncode == 0
    args = ("createadmin", "--username", "x", "--role", "support", "--password-stdin")
    assert runner(*args, input=PASSWORD + "\n").returncode == 0
    dup = runner(*args, input="another long password\n")
    assert_clean_error(dup, "already exists", "'x'")
    assert mongo.admin_users.count_documents({"username": "x"}) == 1


def test_createadmin_short_password_fails(runner, mongo):
    assert runner("migrate").returncode == 0
    result = runner("createadmin", "--username", "x", "--password-stdin", input="short\n")
    assert_clean_error(result, "password must be at least 10 characters")
    assert mongo.admin_users.count_documents({}) == 0


def test_createadmin_without_tty_or_password_stdin_fails(runner, mongo):
    result = runner("createadmin", "--username", "x", input="")
    assert_clean_error(result, "--password-stdin")
    assert mongo.admin_users.count_documents({}) == 0


def test_createadmin_rejects_an_invalid_username(runner, mongo):
    assert runner("migrate").returncode == 0
    result = runner("createadmin", "--username", "bad name!", "--password-stdin", input=PASSWORD)
    assert_clean_error(result, "error: invalid value:", "pattern")
    assert mongo.admin_users.count_documents({}) == 0


def test_createadmin_rejects_unknown_role(runner):
    result = runner("createadmin", "--username", "x", "--role", "god", "--password-stdin")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "Traceback" not in result.stderr


# -- createapikey ------------------------------------------------------------------------------


def test_createapikey_prints_key_last_and_stores_only_its_hash(runner, mongo):
    assert runner("migrate").returncode == 0
    result = runner("createapikey", "--org", "acme", "--scopes", "ingest,read", "--name", "ci")
    assert result.returncode == 0, result.stderr
    last = result.stdout.rstrip("\n").splitlines()[-1]
    match = re.fullmatch(r"ca_([0-9a-f]{16})_([A-Za-z0-9_\-]{20,})", last)
    assert match, last
    key_id = match.group(1)
    assert f"API key {key_id} for org acme with scopes ingest,read." in result.stdout
    docs = list(mongo.api_keys.find())
    assert len(docs) == 1
    doc = docs[0]
    assert doc["key_id"] == key_id and doc["org_id"] == "acme" and doc["name"] == "ci"
    assert doc["scopes"] == ["ingest", "read"] and doc["revoked"] is False
    assert doc["key_hash"] == hashlib.sha256(last.encode()).hexdigest()
    assert last not in str(doc) and match.group(2) not in str(doc)


def test_createapikey_twice_gives_different_keys(runner, mongo):
    assert runner("migrate").returncode == 0
    a = runner("createapikey", "--org", "acme").stdout.splitlines()[-1]
    b = runner("createapikey", "--org", "acme").stdout.splitlines()[-1]
    assert a.startswith("ca_") and b.startswith("ca_") and a != b
    assert mongo.api_keys.count_documents({"org_id": "acme"}) == 2


@pytest.mark.parametrize("scopes", ["ingest,superuser", ",", ""])
def test_createapikey_bad_scope_fails(runner, mongo, scopes):
    result = runner("createapikey", "--org", "acme", "--scopes", scopes)
    assert_clean_error(result, "scopes must be a non-empty subset of")
    assert "ca_" not in result.stdout
    assert mongo.api_keys.count_documents({}) == 0


# -- seed --------------------------------------------------------------------------------------


def test_seed_creates_demo_data_and_a_second_run_adds_nothing(runner, mongo):
    first = runner("seed", "--threads", "5", "--no-progress")
    assert first.returncode == 0, first.stderr
    assert re.search(r"Seeded 5 threads \(0 already present\), \d+ messages", first.stdout)
    assert first.stderr == ""  # no progress bar, no warnings
    counts = {name: mongo[name].count_documents({}) for name in SEEDED}
    assert counts["chat_sessions"] == 5
    assert counts["chat_messages"] >= 5 * 4
    assert counts["analyses"] >= 5 and counts["executions"] == counts["analyses"]
    assert counts["chat_messages"] == 4 * counts["analyses"]
    assert counts["audit_logs"] >= 5
    assert counts["users"] == 12
    linked = [m for m in mongo.chat_messages.find({}, {"analysis_id": 1}) if m.get("analysis_id")]
    assert len(linked) == counts["analyses"]  # (no `$ne: null` query: docs/mongo-compat.md)

    second = runner("seed", "--threads", "5", "--no-progress")
    assert second.returncode == 0, second.stderr
    assert "Seeded 0 threads (5 already present), 0 messages" in second.stdout
    assert {name: mongo[name].count_documents({}) for name in SEEDED} == counts


def test_seed_refuses_zero_threads(runner):
    result = runner("seed", "--threads", "0", "--no-progress")
    assert_clean_error(result, "--threads must be at least 1")


# -- check -------------------------------------------------------------------------------------


def test_check_passes_after_migrate(runner, server_kind):
    assert runner("migrate").returncode == 0
    result = runner("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No problems found." in result.stdout
    assert "FAIL" not in result.stdout
    assert "ok   migrations: 0001 initial collections and indexes: applied" in result.stdout
    assert "ok   chat_messages: indexes match the declaration" in result.stdout
    mode = "terms" if server_kind == "secantusdb" else "text"
    assert f"ok   search: mode {mode} (" in result.stdout


def test_terms_search_mode_can_be_chosen_on_any_server(runner):
    """CHATADMIN_SEARCH_MODE=terms works everywhere: migrate builds the terms index, check
    verifies it; a database moved to another search mode is rebuilt by --rebuild-search."""
    env = {"CHATADMIN_SEARCH_MODE": "terms"}
    migrated = runner("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "Search: terms (" in migrated.stdout
    checked = runner("check", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok   search: mode terms (" in checked.stdout
    assert runner("seed", "--threads", "2", "--no-progress", env=env).returncode == 0
    rebuilt = runner("migrate", "--rebuild-search", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert re.search(r"search terms of 0 chat_messages documents computed", rebuilt.stdout)


def test_text_search_mode_on_a_server_without_it_is_a_clean_error(runner, server_kind):
    result = runner("check", env={"CHATADMIN_SEARCH_MODE": "text"})
    if server_kind == "secantusdb":
        assert_clean_error(result, "CHATADMIN_SEARCH_MODE=text, but this server has no text search")
    else:
        assert "ok   search: mode text (" in result.stdout


def test_check_names_a_dropped_index(runner, mongo):
    assert runner("migrate").returncode == 0
    mongo.chat_messages.drop_index(
        _index_name(mongo.chat_messages, {"org_id": 1, "thread_id": 1, "seq": 1})
    )
    result = runner("check")
    assert_clean_error(result, "1 problem(s) found")
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1, result.stdout
    assert "chat_messages: missing index [org_id, thread_id, seq] unique" in fails[0]
    listing = runner("migrate", "--list")
    assert "chat_messages: missing [org_id, thread_id, seq] unique" in listing.stdout


def test_check_names_an_undeclared_index(runner, mongo):
    assert runner("migrate").returncode == 0
    mongo.chat_sessions.create_index([("stray_field", 1)])
    result = runner("check")
    assert_clean_error(result, "problem(s) found")
    assert "FAIL chat_sessions: undeclared index [stray_field]" in result.stdout


def test_check_before_migrate_reports_the_pending_migration(runner):
    result = runner("check")
    assert_clean_error(result, "problem(s) found")
    assert "FAIL migrations: 0001 initial collections and indexes: pending" in result.stdout
    assert "FAIL chat_messages: collection does not exist" in result.stdout


# -- unreachable database ----------------------------------------------------------------------


def test_unreachable_database_is_a_clean_error_for_every_command(runner):
    """All commands at once (each waits for server selection), so this costs one timeout."""
    uri = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=500"
    commands = {
        "migrate": (("migrate",), None),
        "migrate --list": (("migrate", "--list"), None),
        "check": (("check",), None),
        "createadmin": (("createadmin", "--username", "x", "--password-stdin"), PASSWORD),
        "createapikey": (("createapikey", "--org", "acme"), None),
        "seed": (("seed", "--threads", "1", "--no-progress"), None),
    }
    with ThreadPoolExecutor(len(commands)) as pool:
        futures = {
            name: pool.submit(runner, *args, input=stdin, env={"MONGODB_URI": uri}, timeout=60)
            for name, (args, stdin) in commands.items()
        }
        results = {name: future.result() for name, future in futures.items()}
    for name, result in results.items():
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        assert "error: database:" in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, name
    assert "Created" not in results["createadmin"].stdout
    assert "ca_" not in results["createapikey"].stdout
    assert "No problems found." not in results["check"].stdout


def test_weak_secret_key_is_a_clean_config_error(runner):
    result = runner("migrate", env={"CHATADMIN_SECRET_KEY": "changeme"})
    assert_clean_error(result, "CHATADMIN_SECRET_KEY")
