"""The admin in a real browser: Playwright for Python driving Debian's /usr/bin/chromium against a
`manage.py runserver` subprocess on a fresh database seeded with `manage.py seed`.

Every test gets a fresh browser context; every request it makes is recorded and none may leave
the server's loopback origin, and no page may throw an uncaught error. Sign-ins go through the
login form once per role; later tests of the same role start a fresh context from that
session's cookies (argon2id makes every real login cost about a second).

Screenshots of the login page, the dashboard, two lists and a conversation go to `screenshots/`
(git-ignored).
"""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pymongo import MongoClient

from chatadmin.testservers import AppServer

# What a browser adds does not depend on the server under the app (see `one_server` in
# tests/conftest.py); tests/admin checks the server side of these pages on both servers.
pytestmark = pytest.mark.one_server

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SEED_THREADS = 12  # the seed puts thread i in org ("acme", "globex", "initech")[i % 3]
ACME_THREADS = len(range(0, SEED_THREADS, 3))
THREAD = "seed-thread-00000"  # acme, topic "volatility", tool "calculate_volatility"
THREADS = "/admin/threads/list"
CHARTS = ("chart-messages", "chart-executions", "chart-tokens", "chart-feedback", "chart-users")


@dataclass(frozen=True)
class Staff:
    username: str
    role: str
    org: str | None = None

    @property
    def password(self) -> str:
        return f"{self.username}-pass-0123456789"


STAFF = {
    "admin": Staff("admin", "admin"),
    "support": Staff("support", "support"),
    "viewer": Staff("viewer", "viewer"),
    "acme-admin": Staff("acme-admin", "admin", "acme"),
    "throttled": Staff("throttled", "viewer"),  # only the throttle test signs in as this one
}

# Appended to THREAD through the API, so that its transcript holds every block type (the seed
# has no image reference), a failed tool call, and text that must show escaped, breaks kept.
EXTRA_MESSAGES = [
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me draw that as a chart."},
            {
                "type": "tool_use",
                "id": "toolu_browser_chart",
                "name": "render_chart",
                "input": {"ticker": "MSFT", "kind": "line"},
            },
        ],
    },
    {
        "role": "tool",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_browser_chart",
                "is_error": True,
                "content": "chart service unavailable (HTTP 503)",
            }
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "<b>not bold</b> first line\nsecond line"},
            {
                "type": "image_ref",
                "url": "https://images.example/msft-volatility.png",
                "media_type": "image/png",
                "alt_text": "MSFT volatility chart",
                "width": 640,
                "height": 480,
            },
        ],
    },
]


@dataclass
class Server:
    base: str
    db_name: str
    redis_prefix: str
    redis_url: str
    api_headers: dict = field(default_factory=dict)  # an acme key with ingest and read


@dataclass
class Recorded:
    """What the browser did during one test."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# -- the server -------------------------------------------------------------------------------


def _finish(proc: subprocess.Popen, input: str | None = None, timeout: float = 60) -> str:
    out, err = proc.communicate(input, timeout=timeout)
    assert proc.returncode == 0, f"manage.py {' '.join(proc.args[2:])} failed: {out}{err}"
    return out


def _wait_migrated(uri: str, db_name: str, seed: subprocess.Popen) -> None:
    """Wait until the seed command has applied every migration."""
    from chatadmin.migrations import available

    versions = {version for version, _module in available()}
    deadline = time.monotonic() + 60
    with MongoClient(uri) as client:
        records = client[db_name]["migrations"]
        while time.monotonic() < deadline:
            assert seed.poll() in (None, 0), f"seed failed: {seed.communicate()}"
            done = {r["version"] for r in records.find({"status": "completed"})}
            if versions <= done:
                return
            time.sleep(0.1)
    raise AssertionError("the seed did not apply the migrations in time")


def _clear_throttle(srv: Server) -> None:
    """Forget this server's failed-login counters and locks (its own Redis key prefix)."""
    client = redis.Redis.from_url(srv.redis_url)
    try:
        for key in client.scan_iter(f"{srv.redis_prefix}login:*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def clean():
    """Stands in for conftest's async `clean`: these tests leave the session database alone,
    and while Playwright's sync API is up its event loop counts as running, so an async fixture
    could not be set up."""
    yield


@pytest.fixture(scope="module")
def server(settings, redis_url, tmp_path_factory) -> Server:
    """`manage.py runserver` on a free port and a fresh database, seeded and with staff users."""
    redis_prefix = f"browser-{uuid.uuid4().hex[:8]}:"
    env = {
        "REDIS_PREFIX": redis_prefix,  # this server's login throttle, apart from others'
        "CHATADMIN_DEBUG": "1",  # plain http: session cookies must not be Secure
    }
    app = AppServer(
        settings.mongodb_uri, f"chatadmin_browser_{uuid.uuid4().hex[:8]}",
        tmp_path_factory.mktemp("browser"), redis_url=redis_url, env=env,
    )  # fmt: skip
    srv = Server(base=app.base, db_name=app.db_name, redis_prefix=redis_prefix, redis_url=redis_url)
    procs: list[subprocess.Popen] = []
    try:
        # The seed applies the migrations first; once they are done, everything else starts
        # beside it (every command and the server then find the migrations applied).
        seed = app.spawn("seed", "--threads", str(SEED_THREADS), "--no-progress")
        procs.append(seed)
        _wait_migrated(settings.mongodb_uri, srv.db_name, seed)
        key = app.spawn("createapikey", "--org", "acme", "--scopes", "ingest,read")
        procs.append(key)
        admins = []
        for s in STAFF.values():
            org = ["--org", s.org] if s.org else []
            args = ("createadmin", "--username", s.username, "--role", s.role, *org)
            admins.append((app.spawn(*args, "--password-stdin", stdin=True), s))
            procs.append(admins[-1][0])
        app.start()
        for p, s in admins:
            _finish(p, s.password + "\n")
        _finish(seed, timeout=120)
        assert app.wait_ready(30), f"runserver was not ready in time: {app.log()[-2000:]}"
        headers = {"Authorization": f"Bearer {_finish(key).strip().splitlines()[-1]}"}
        srv.api_headers = headers
        for body in EXTRA_MESSAGES:
            r = httpx.post(f"{srv.base}/api/v1/threads/{THREAD}/messages", json=body,
                           headers=headers, timeout=10)  # fmt: skip
            assert r.status_code == 201, r.text
        yield srv
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        app.stop()
        _clear_throttle(srv)
        with MongoClient(settings.mongodb_uri) as client:
            client.drop_database(srv.db_name)


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Browser:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def sessions() -> dict[str, list]:
    """Session cookies per role, from the first sign-in through the form."""
    return {}


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
def page(browser, server, recorded) -> Page:
    """A page in a fresh context; after the test, no request may have left the server's
    origin and no page may have thrown."""
    context = browser.new_context(base_url=server.base, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    context.on("request", lambda r: recorded.requests.append(r.url))
    pg = context.new_page()
    pg.on("pageerror", lambda e: recorded.errors.append(str(e)))
    yield pg
    context.close()
    assert recorded.requests, "the test made no request"
    assert leaving(server, recorded.requests) == []
    assert recorded.errors == []


@pytest.fixture
def sign_in(page, sessions, server):
    """`sign_in("viewer", THREADS)`: the page, signed in as that role, at that address."""

    def go(who: str, start: str = "/admin/") -> Page:
        if who in sessions:
            page.context.add_cookies(sessions[who])
        else:
            login(page, who)
            sessions[who] = page.context.cookies()
        if page.url != f"{server.base}{start}":
            assert page.goto(start).ok, start
        expect(page).to_have_url(f"{server.base}{start}")
        expect(page.get_by_role("link", name="Open user menu").filter(visible=True)).to_have_text(
            STAFF[who].username
        )
        return page

    return go


def leaving(server: Server, urls: list[str]) -> list[str]:
    return [u for u in urls if not u.startswith((server.base + "/", "data:", "blob:"))]


def submit_login(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def login(page: Page, who: str) -> None:
    page.goto("/admin/login")
    submit_login(page, STAFF[who].username, STAFF[who].password)
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def cells(page: Page, column: str) -> list[str]:
    """The texts of one column of the list on the page."""
    return [t.strip() for t in page.locator(f"tbody td[data-column={column}]").all_inner_texts()]


def sidebar(page: Page):
    return page.locator("#sidebar-menu")


def nav(page: Page, name: str):
    """A link of the sidebar menu, by its exact text."""
    return sidebar(page).get_by_role("link", name=name, exact=True)


def open_menu(page: Page, name: str) -> None:
    """Click a sidebar link and wait for its page to load."""
    link = nav(page, name)
    href = link.get_attribute("href")
    link.click()
    page.wait_for_url(href)


def search(page: Page, text: str) -> None:
    box = page.get_by_placeholder("Search...")
    box.fill(text)
    box.press("Enter")
    page.wait_for_url(re.compile(r"[?&]q="))


# -- login and dashboard ----------------------------------------------------------------------


def test_login_page_is_finished(page):
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login"))
    expect(page.get_by_role("heading", name="Login to your account")).to_be_visible()
    expect(page.get_by_label("Username")).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
    assert "Inter" in page.evaluate("getComputedStyle(document.body).fontFamily")
    inter = page.evaluate(
        """async () => { await document.fonts.ready;
            return [...document.fonts].filter(f => f.family.replace(/['"]/g, "") === "Inter"
                                                  && f.status === "loaded").length; }"""
    )
    assert inter > 0, "the Inter font (served from /static) is not in use"
    shot(page, "login")


def title_at_top(page: Page) -> None:
    """The page's title sits in the layout's header, right under the top bar (not below an
    empty header)."""
    title, bar = page.locator("h2.page-title").bounding_box(), page.locator("header").first
    assert title and title["y"] < bar.bounding_box()["height"] + 60, title


@pytest.mark.parametrize("who", ["admin", "support", "viewer", "acme-admin"])
def test_each_role_logs_in_to_a_dashboard_with_counts_and_five_charts(page, sessions, who):
    login(page, who)
    sessions[who] = page.context.cookies()
    user_menu = page.get_by_role("link", name="Open user menu").filter(visible=True)
    expect(user_menu).to_have_text(STAFF[who].username)
    scoped = STAFF[who].org is not None
    expected = ACME_THREADS if scoped else SEED_THREADS
    expect(page.locator("[data-count=chat_sessions]")).to_have_text(str(expected))
    for name in ("chat_messages", "users", "analyses", "executions", "audit_logs"):
        count = page.locator(f"[data-count={name}]").inner_text().replace(",", "")
        assert int(count) > 0, name
    if scoped:
        expect(page.get_by_role("heading", name="Dashboard")).to_contain_text("org acme")
    title_at_top(page)

    src = page.locator("script[src*='chart.umd']").get_attribute("src")
    assert src.startswith(f"{page.url.split('/admin/')[0]}/static/vendor/"), src
    assert page.evaluate("typeof window.Chart") == "function"
    for chart in CHARTS:
        box = page.locator(f"canvas#{chart}").bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, (chart, box)
    # Every chart is drawn: a Chart.js instance with data, and painted pixels on its canvas.
    page.wait_for_function(
        """ids => ids.every(id => {
            const canvas = document.getElementById(id), chart = window.Chart.getChart(canvas);
            if (!chart || chart.data.datasets[0].data.every(v => !v)) return false;
            const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
            for (let i = 3; i < px.data.length; i += 4) if (px.data[i]) return true;
            return false;
        })""",
        arg=list(CHARTS),
    )
    if who == "admin":
        shot(page, "dashboard")


# -- lists ------------------------------------------------------------------------------------


def test_messages_list_searched_for_volatility_shows_matching_rows(sign_in):
    page = sign_in("admin", "/admin/messages/list")
    search(page, "volatility")
    texts = cells(page, "text")
    assert texts, "no rows"
    assert all("volatility" in t.lower() for t in texts), texts
    n = len(texts)
    expect(page.get_by_text(f"Showing 1 to {n} of {n} entries")).to_be_visible()
    expect(page.locator("tbody td[data-column=text] mark").first).to_have_text("volatility")
    shot(page, "messages-list")


def test_threads_list_shows_rows_and_filters_by_user(sign_in):
    page = sign_in("admin", THREADS)
    expect(page.get_by_role("heading", name="Threads")).to_be_visible()
    assert len(cells(page, "thread_id")) == SEED_THREADS
    assert set(cells(page, "org_id")) == {"acme", "globex", "initech"}
    assert all(cells(page, "title"))
    shot(page, "threads-list")

    page.get_by_role("button", name="Filters").click()
    form = page.locator("#filter-form")
    form.get_by_label("Field").select_option(label="User id")
    form.get_by_label("Filter", exact=True).select_option(label="Equal")
    form.locator("input.filter-row-value").fill("acme-user-4")
    form.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"[?&]filter="))
    users = cells(page, "user_id")
    assert users and set(users) == {"acme-user-4"}, users
    assert set(cells(page, "org_id")) == {"acme"}


# -- the conversation page --------------------------------------------------------------------


def open_conversation(page: Page, thread_id: str) -> None:
    """On the threads list: search for the thread, then its row action "Open conversation"."""
    search(page, thread_id)
    assert cells(page, "thread_id") == [thread_id]
    page.locator("tbody tr").get_by_role("link", name="Open conversation").click()
    page.wait_for_url(re.compile(rf"/admin/conversations/{thread_id}\?org="))


def test_a_conversation_shows_every_block_type(sign_in):
    page = sign_in("admin", THREADS)
    open_conversation(page, THREAD)
    expect(page.locator(".page-pretitle")).to_have_text("Conversation · org acme")
    expect(page.get_by_role("heading", name="MSFT volatility")).to_be_visible()
    title_at_top(page)
    first = page.locator(".transcript .msg").first
    expect(first.locator(".badge.role-user")).to_have_text("user")
    expect(first.locator(".msg-head")).to_contain_text("#0 ·")
    expect(first.locator(".block.text.md")).to_contain_text("volatility")
    # Model, tokens and latency per assistant message.
    expect(page.locator(".msg-assistant .meta").first).to_have_text(
        re.compile(r"claude-sonnet-4 · [\d,]+ tokens · \d+ ms")
    )
    # A tool call: its name and pretty JSON input.
    tool_use = page.locator(".block.tool-use").first
    expect(tool_use.locator("code")).to_have_text("calculate_volatility")
    expect(tool_use.locator("pre")).to_contain_text('"lookback_days":')
    # Tool results; a failed one carries an error badge.
    expect(page.locator(".block.tool-result:not(.is-error)").first).to_contain_text('"ok": true')
    failed = page.locator(".block.tool-result.is-error", has_text="chart service unavailable")
    expect(failed.locator(".badge")).to_have_text("error")
    expect(failed).to_contain_text("Tool result for toolu_browser_chart")
    # A citation, structured data as a table, the analysis as a key/value/description table.
    citation = page.locator("blockquote.citation").first
    expect(citation).to_contain_text("daily closes")
    expect(citation).to_contain_text("Market data feed")
    data = page.locator(".block.structured table").first
    expect(data.locator("th")).to_have_text(["metric", "value"])
    expect(data.locator("tbody tr").first.locator("td").first).to_have_text("volatility")
    analysis = page.locator(".block.analysis").first
    expect(analysis.locator(".block-title")).to_contain_text("Analysis: MSFT")
    expect(analysis.locator("th")).to_have_text(["Key", "Value", "Description"])
    expect(analysis.locator("tbody tr").first.locator("td").first).to_have_text("volatility")
    # Executions: status badge and duration, linked to the execution record.
    execution = page.locator(".block.execution", has=page.locator(".badge.status-success"))
    expect(execution.first).to_contain_text(re.compile(r"success · \d+ ms"))
    expect(execution.first.get_by_role("link")).to_have_attribute(
        "href", re.compile("/executions/")
    )
    # An image reference: shown as a reference, never fetched.
    image = page.locator(".block.image-ref")
    expect(image).to_contain_text("MSFT volatility chart")
    expect(image).to_contain_text("https://images.example/msft-volatility.png")
    expect(image).to_contain_text("640\N{MULTIPLICATION SIGN}480")
    # Text is Markdown, with raw HTML escaped (no markup from the message) and its line
    # breaks kept.
    escaped = page.locator(".block.text.md", has_text="not bold")
    expect(escaped.locator("b")).to_have_count(0)
    assert escaped.inner_text().splitlines() == ["<b>not bold</b> first line", "second line"]
    shot(page, "conversation")


HOSTILE_MARKDOWN = "\n\n".join(
    [
        "The Sharpe ratio is **46.96%** and *rising*.",
        "- one\n- two",
        "| metric | value |\n|---|---:|\n| sharpe | 1.75 |",
        "```python\nprint('<script>alert(1)</script>')\n```",
        "<script>window.__pwned = 1</script>",
        '<img src="x" onerror="window.__pwned = 2">',
        "[click me](javascript:window.__pwned=3)",
        "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "![tracker](https://tracker.example/pixel.png)",
        '<a href="https://example.com" onclick="window.__pwned=4">html link</a>',
        "[ref]\n\n[ref]: javascript:window.__pwned=5",
        '<iframe src="https://evil.example"></iframe>',
        "[safe](https://example.com/docs)",
    ]
)


def test_hostile_markdown_renders_formatting_and_runs_nothing(sign_in, server, recorded):
    said = {"role": "assistant", "content": HOSTILE_MARKDOWN}
    r = httpx.post(f"{server.base}/api/v1/threads/{THREAD}/messages", json=said,
                   headers=server.api_headers, timeout=10)  # fmt: skip
    assert r.status_code == 201, r.text
    page = sign_in("support", THREADS)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"/admin/conversations/{THREAD}?org=acme&from={r.json()['seq']}")
    md = page.locator(f"#m{r.json()['seq']} .block.text.md")
    expect(md.locator("strong")).to_have_text("46.96%")
    expect(md.locator("em")).to_have_text("rising")
    expect(md.locator("ul li")).to_have_text(["one", "two"])
    expect(md.locator("table td")).to_have_text(["sharpe", "1.75"])
    expect(md.locator("pre code.language-python")).to_contain_text("<script>alert(1)</script>")
    expect(md.locator("script, iframe, img, [onerror], [onclick]")).to_have_count(0)
    hrefs = [a.get_attribute("href") for a in md.locator("a").all()]
    assert "https://example.com/docs" in hrefs
    assert not [h for h in hrefs if h and not h.startswith(("https://", "http://", "mailto:"))]
    assert all(a.get_attribute("rel") == "noopener noreferrer" for a in md.locator("a[href]").all())
    expect(md.get_by_role("link", name="image: tracker")).to_be_visible()  # a link, not fetched
    expect(md.get_by_role("link", name="click me")).to_have_count(0)  # left as plain text
    expect(md.get_by_role("link", name="ref")).to_have_count(0)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert not [u for u in recorded.requests if "tracker.example" in u or "evil.example" in u]
    # The raw text, as written, one click away.
    raw = page.locator(f"#m{r.json()['seq']} .block.text.raw")
    expect(raw).to_be_hidden()
    page.get_by_role("button", name="Raw text").click()
    expect(raw).to_be_visible()
    expect(raw).to_contain_text("**46.96%**")
    expect(md).to_be_hidden()
    page.get_by_role("button", name="Raw text").click()
    expect(md).to_be_visible()
    shot(page, "conversation-markdown")


def test_a_csv_export_from_the_browser_is_safe_in_a_spreadsheet(sign_in, server):
    hostile = {"type": "user", "id": "formula-user",
               "data": {"display_name": '=HYPERLINK("http://evil.example","x")',
                        "email": "formula@acme.example", "username": "formula",
                        "metadata": {"plan": "pro"}}}  # fmt: skip
    r = httpx.post(f"{server.base}/api/v1/ingest", json={"events": [hostile]},
                   headers=server.api_headers, timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    page = sign_in("admin", "/admin/users/list")
    search(page, "formula-user")
    assert cells(page, "user_id") == ["formula-user"]
    page.locator('[data-sa-name="export"]').first.click()
    modal = page.locator(".modal.show")
    modal.get_by_text("Current page").click()
    modal.locator("select[name=format]").select_option("csv")
    with page.expect_download() as info:
        modal.get_by_role("button", name=re.compile(r"^\s*Export")).click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    text = Path(download.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1
    row = {k.lower().replace(" ", "_"): v for k, v in rows[0].items()}
    assert row["display_name"].startswith("'=HYPERLINK")
    assert json.loads(row["metadata"]) == {"plan": "pro"}


# -- what each role may and may not see or do -------------------------------------------------


def test_viewer_cannot_edit_or_delete_sees_no_settings_and_sees_masked_emails(sign_in):
    page = sign_in("viewer", THREADS)
    expect(nav(page, "Threads")).to_be_visible()
    for hidden in ("Settings", "Admin users", "API keys", "Migrations"):
        expect(sidebar(page).get_by_text(hidden, exact=True)).to_have_count(0)
    assert len(cells(page, "thread_id")) == SEED_THREADS
    row = page.locator("tbody tr").first
    expect(row.get_by_role("link", name="View", exact=True)).to_be_visible()
    expect(row.get_by_role("link", name="Open conversation")).to_be_visible()
    for forbidden in ("Edit", "Delete", "Add a note"):
        expect(page.get_by_role("link", name=forbidden, exact=True)).to_have_count(0)
    expect(page.get_by_text(re.compile(r"^With selected"))).to_have_count(0)

    open_menu(page, "Users")
    emails = cells(page, "email")
    assert len(emails) >= 12  # the seeded twelve (the CSV export test may have added one)
    assert all(re.fullmatch(r"[a-z]\*\*\*@\*\*\*\.example", e) for e in emails), emails
    assert all(re.fullmatch(r"[a-z]\*\*\*", u) for u in cells(page, "username"))
    expect(page.get_by_text(re.compile(r"@(acme|globex|initech)\.example"))).to_have_count(0)
    shot(page, "users-list-viewer")

    # Typed addresses are refused by the server too, not only hidden from the menu.
    assert page.goto("/admin/api-keys/list").status == 403
    assert page.goto("/admin/admin-users/list").status == 403
    assert page.goto("/admin/threads/list").status == 200


def test_viewer_conversation_is_masked_and_has_no_note_form(sign_in):
    page = sign_in("viewer", THREADS)
    open_conversation(page, THREAD)
    header = page.locator(".page-header")
    expect(header).to_contain_text(re.compile(r"[a-z]\*\*\*@\*\*\*\.example"))
    expect(header).not_to_contain_text("@acme.example")
    expect(page.locator("#notes")).to_contain_text("Staff notes")
    expect(page.get_by_role("button", name="Add note")).to_have_count(0)
    expect(page.get_by_placeholder("Add a note for other staff")).to_have_count(0)


def test_the_transcript_tails_new_messages_and_typing_live(sign_in, server):
    page = sign_in("support", THREADS)
    open_conversation(page, THREAD)
    expect(page.locator("#live .live-state")).to_have_text("live")
    page.wait_for_timeout(300)  # the event stream is open once its first bytes are in
    said = {"role": "assistant", "content": "Live: the 30-day volatility is 21.4%"}
    r = httpx.post(f"{server.base}/api/v1/threads/{THREAD}/messages", json=said,
                   headers=server.api_headers, timeout=10)  # fmt: skip
    assert r.status_code == 201, r.text
    live = page.locator(f".transcript .msg-live#m{r.json()['seq']}")
    expect(live).to_contain_text("Live: the 30-day volatility is 21.4%")
    expect(live.locator(".badge.role-assistant")).to_have_text("assistant")
    who = {"user_id": "acme-user-1"}
    typing = httpx.post(f"{server.base}/api/v1/threads/{THREAD}/typing", json=who,
                        headers=server.api_headers, timeout=10)  # fmt: skip
    assert typing.status_code == 200, typing.text
    expect(page.locator("#live .live-typing")).to_have_text("acme-user-1 is typing…")
    url = f"{server.base}/api/v1/threads/{THREAD}/messages/next-answer/processing"
    queued = httpx.put(url, json={"status": "queued"}, headers=server.api_headers, timeout=10)
    assert queued.status_code == 200, queued.text
    expect(page.locator("#live .live-processing")).to_have_text("AI queued (message next-answer)")


def test_a_viewer_cannot_delete_by_hand_even_with_a_csrf_token(sign_in):
    page = sign_in("viewer", THREADS)
    pk = page.locator("tbody tr").first.get_attribute("data-sa-pk")
    token = next(c["value"] for c in page.context.cookies() if c["name"].endswith("csrftoken"))
    r = page.request.post(
        f"/admin/_api/threads/action?name=delete&pks={pk}", headers={"X-CSRFToken": token}
    )
    # Refused (starlette-admin answers a refused action with 400 and a message, not 403).
    assert r.status == 403, r.status
    page.reload()
    expect(page.locator(f"tbody tr[data-sa-pk='{pk}']")).to_have_count(1)


def test_support_adds_a_note_on_the_conversation_page(sign_in):
    page = sign_in("support", THREADS)
    open_conversation(page, THREAD)
    notes = page.locator("#notes")
    note = f"Customer called about this thread ({uuid.uuid4().hex[:6]})."
    notes.get_by_placeholder("Add a note for other staff").fill(note)
    notes.get_by_role("button", name="Add note").click()
    page.wait_for_url(re.compile(r"#notes$"))
    added = notes.locator(".note", has_text=note)
    expect(added).to_be_visible()
    expect(added.locator("strong")).to_have_text("support")
    # support annotates, but changes no raw data and has no settings
    open_menu(page, "Threads")
    expect(page.locator("tbody tr").first.get_by_role("link", name="Add a note")).to_be_visible()
    for forbidden in ("Edit", "Delete"):
        expect(page.get_by_role("link", name=forbidden, exact=True)).to_have_count(0)
    expect(sidebar(page).get_by_text("Settings", exact=True)).to_have_count(0)


def test_admin_may_edit_and_delete_and_creates_an_api_key_shown_once(sign_in, server):
    page = sign_in("admin", THREADS)
    first = page.locator("tbody tr").first
    expect(first.get_by_role("link", name="Edit", exact=True)).to_be_visible()
    expect(first.get_by_role("link", name="Delete", exact=True)).to_be_visible()

    expect(sidebar(page).get_by_text("Settings", exact=True)).to_be_visible()
    expect(nav(page, "Admin users")).to_be_visible()
    open_menu(page, "API keys")
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    page.get_by_role("link", name=re.compile(r"^\s*New")).click()
    page.wait_for_url(re.compile(r"/admin/api-keys/create"))
    page.get_by_label("Org id").fill("globex")
    page.get_by_label("Name", exact=True).fill("browser-test key")
    page.locator("select#scopes").select_option(["read"])
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()

    # The secret is in the answer's body, once; never in a cookie.
    expect(page.get_by_role("heading", name="API key created")).to_be_visible()
    secret = page.locator("#api-key-secret").inner_text().strip()
    assert len(secret) >= 20, secret
    assert not [c for c in page.context.cookies() if secret in c["value"]]
    shot(page, "api-key-created")
    works = httpx.get(
        f"{server.base}/api/v1/threads", headers={"Authorization": f"Bearer {secret}"}
    )
    assert works.status_code == 200, works.text
    page.get_by_role("link", name="Continue").click()
    page.wait_for_url(re.compile(r"/admin/api-keys/list"))
    assert secret not in page.content()
    page.goto("/admin/api-keys/list")
    expect(page.locator("tbody tr", has_text="browser-test key")).to_have_count(1)
    assert secret not in page.content()


# -- org scoping ------------------------------------------------------------------------------


def test_an_org_scoped_admin_sees_only_its_org(sign_in):
    page = sign_in("acme-admin", THREADS)
    assert cells(page, "org_id") == ["acme"] * ACME_THREADS
    open_menu(page, "Messages")
    assert set(cells(page, "org_id")) == {"acme"}
    open_menu(page, "Users")
    assert set(cells(page, "org_id")) == {"acme"}
    open_menu(page, "Audit logs")
    assert set(cells(page, "org_id")) == {"acme"}
    # Another org's thread is not found; admin users are for admins of every org only.
    assert page.goto("/admin/conversations/seed-thread-00001").status == 404
    assert page.goto("/admin/").ok
    expect(nav(page, "API keys")).to_be_visible()
    expect(nav(page, "Admin users")).to_have_count(0)
    assert page.goto("/admin/admin-users/list").status == 403


# -- CSRF -------------------------------------------------------------------------------------


def test_a_forged_post_without_a_csrf_token_is_refused(sign_in):
    page = sign_in("admin", THREADS)
    row = page.locator("tbody tr").first
    pk = row.get_attribute("data-sa-pk")
    thread_id = row.locator("td[data-column=thread_id]").inner_text().strip()
    status, body = page.evaluate(
        """async pk => {
            const r = await fetch(`/admin/_api/threads/action?name=delete&pks=${pk}`,
                                  {method: "POST", credentials: "same-origin"});
            return [r.status, await r.text()];
        }""",
        pk,
    )
    assert (status, body) == (403, "CSRF token missing")
    wrong = page.request.post(
        f"/admin/_api/threads/action?name=delete&pks={pk}", headers={"X-CSRFToken": "forged"}
    )
    assert (wrong.status, wrong.text()) == (403, "CSRF token invalid")
    page.reload()
    expect(page.locator("tbody td[data-column=thread_id]", has_text=thread_id)).to_have_count(1)
    assert page.goto(f"/admin/threads/detail?pk={pk}").status == 200


# -- no request leaves loopback ---------------------------------------------------------------


def test_no_request_leaves_loopback_on_any_admin_page(sign_in, server, recorded):
    page = sign_in("admin")
    links = sidebar(page).locator("a.dropdown-item, a.nav-link:not(.dropdown-toggle)")
    hrefs = [h for h in links.evaluate_all("els => els.map(e => e.href)") if h]
    assert len(hrefs) >= 15, hrefs
    hrefs += [f"/admin/conversations/{THREAD}?org=acme", "/admin/api-keys/create"]
    for href in hrefs:
        response = page.goto(href)  # waits for "load": styles, scripts, fonts and images
        assert response.status == 200, href
    assert len(recorded.requests) > 3 * len(hrefs)
    assert leaving(server, recorded.requests) == []


# -- the login throttle (last: it locks out 127.0.0.1 until cleared) ----------------------------


def test_login_throttle_refuses_the_sixth_try_even_with_the_right_password(page, server):
    alert = page.locator(".alert-description")
    try:
        page.goto("/admin/login")
        for attempt in range(1, 6):
            submit_login(page, "throttled", f"wrong-password-{attempt}")
            if attempt < 5:
                expect(alert).to_have_text("Wrong username or password.")
            else:
                expect(alert).to_have_text("Too many failed logins. Try again in 15 minutes.")
        right = STAFF["throttled"]
        submit_login(page, right.username, right.password)
        expect(alert).to_have_text(
            re.compile(r"Too many failed logins\. Try again in 1[45] minutes\.")
        )
        expect(page).to_have_url(re.compile(r"/admin/login"))
        # The address is locked as well: another user's right password is refused too.
        submit_login(page, STAFF["admin"].username, STAFF["admin"].password)
        expect(alert).to_contain_text("Too many failed logins")
        page.goto("/admin/")
        expect(page).to_have_url(re.compile(r"/admin/login"))
    finally:
        _clear_throttle(server)
