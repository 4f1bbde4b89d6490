"""Helpers of the admin's HTTP tests: a staff member's client, forms and CSRF, what a list
page shows, and the data the tests browse (seeded orgs and a thread with every block type)."""

from __future__ import annotations

import base64
import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import unquote, urlencode

import httpx

from chatadmin.clock import utcnow
from chatadmin.models import Thread
from chatadmin.services import executions, messages, threads

PASSWORD = "correct horse battery staple"


UA = "admin-http-tests/1.0"


CSRF_COOKIE = "starlette_admin_csrftoken"


SESSION_COOKIE = "chatadmin_session"


RUN = uuid.uuid4().hex[:6]  # throttle counters live in Redis for the whole session: unique keys


PORTS = itertools.count(41000)


NET = f"10.{int(RUN[:2], 16)}.{int(RUN[2:4], 16)}"  # failed logins come from here: one address each


IPS = (f"{NET}.{n}" for n in itertools.count(1))


BLOCKS_THREAD = "blocks-thread"


LIST_KEYS = (
    "threads",
    "messages",
    "shares",
    "contexts",
    "analyses",
    "saved-analyses",
    "executions",
    "cache",
    "audit-logs",
    "reported-audit",
    "migrations",
    "users",
    "connections",
    "analytics",
    "admin-users",
    "api-keys",
)


@dataclass
class Staff:
    """A logged-in (or not) browser: its own client, cookies and address."""

    http: httpx.AsyncClient
    username: str = ""
    ip: str = "127.0.0.1"
    extra: dict = field(default_factory=dict)

    @property
    def csrf(self) -> str:
        return self.http.cookies.get(CSRF_COOKIE) or ""

    async def get(self, url: str, **kw) -> httpx.Response:
        return await self.http.get(url, **kw)

    async def post(self, url: str, **kw) -> httpx.Response:
        return await self.http.post(url, **kw)

    async def form_post(self, url: str, data: dict | list) -> httpx.Response:
        """A form POST carrying the CSRF field, as the browser sends it."""
        pairs = list(data.items()) if isinstance(data, dict) else list(data)
        body = urlencode([*pairs, ("csrftoken", self.csrf)])
        return await self.http.post(
            url, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
        )

    async def action(self, key: str, name: str, pks: list[str], csrf: bool = True):
        params = [("name", name), *(("pks", pk) for pk in pks)]
        headers = {"X-CSRFToken": self.csrf} if csrf else {}
        return await self.http.post(f"/admin/_api/{key}/action", params=params, headers=headers)


def hidden_csrf(html: str) -> str:
    found = re.search(r'name="csrftoken" value="([^"]+)"', html)
    assert found, "no csrftoken field on the page"
    return found.group(1)


def session_data(response: httpx.Response) -> dict | None:
    """The JSON inside the signed session cookie a response sets (None when cleared)."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{SESSION_COOKIE}="):
            value = header.split(";", 1)[0].split("=", 1)[1]
            if value in ("", "null"):
                return None
            payload = value.split(".", 1)[0]
            return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    return None


class FormFields(HTMLParser):
    """The named inputs, textareas and selects of the first form holding a csrftoken."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._textarea: str | None = None
        self._select: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((name, a.get("value") or "on"))
            elif kind not in ("submit", "button", "file"):
                self.fields.append((name, a.get("value") or ""))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.fields.append((self._select, a.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "textarea" and self._textarea:
            self.fields.append((self._textarea, "".join(self._text)))
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._textarea:
            self._text.append(data)


def form_fields(html: str) -> list[tuple[str, str]]:
    parser = FormFields()
    parser.feed(html)
    return parser.fields


class JsonFields(HTMLParser):
    """The values a detail page hands to its JSON viewer, for one field id."""

    def __init__(self, field_id: str):
        super().__init__()
        self.field_id, self.values = field_id, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == self.field_id and "field-json" in (a.get("class") or ""):
            self.values.append(json.loads(a.get("data-json") or "null"))


def json_fields(html: str, field_id: str) -> list:
    """Each JSON value shown for `field_id` (one per item of a list field), parsed."""
    parser = JsonFields(field_id)
    parser.feed(html)
    return parser.values


async def try_login(staff: Staff, username: str, password: str) -> httpx.Response:
    page = await staff.get("/admin/login")
    assert page.status_code == 200
    token = hidden_csrf(page.text)
    return await staff.post(
        "/admin/login", data={"username": username, "password": password, "csrftoken": token}
    )


async def make_block_thread() -> dict:
    """An acme thread holding every block type, an analysis, an execution and hostile text."""
    start = utcnow() - timedelta(hours=2)
    org, user = "acme", "acme-user-1"
    await threads.create_thread(
        org,
        user,
        thread_id=BLOCKS_THREAD,
        title="Every block <b>type</b>",
        created_at=start,
        tags=["blocks"],
        metadata={"channel": "test", "contact": {"email": "ada.1@acme.example"}},
        context_summary={"topic": "prices"},
    )
    await messages.append_message(
        org,
        BLOCKS_THREAD,
        message_id="blk-q",
        role="user",
        user_id=user,
        created_at=start,
        content="<script>alert(1)</script>",
        metadata={"client": {"email": "ada.1@acme.example", "ip_address": "203.0.113.9"}},
    )
    await messages.append_message(
        org,
        BLOCKS_THREAD,
        message_id="blk-t",
        role="assistant",
        user_id=user,
        created_at=start + timedelta(seconds=5),
        content=[
            {"type": "text", "text": "Let me fetch the prices."},
            {
                "type": "tool_use",
                "id": "toolu_blk_1",
                "name": "fetch_price_history",
                "input": {"ticker": "ZZTOP", "lookback_days": 17},
            },
        ],
        ai_metadata={"model": "model-under-test", "input_tokens": 120, "output_tokens": 30},
    )
    await messages.append_message(
        org,
        BLOCKS_THREAD,
        message_id="blk-r",
        role="tool",
        user_id=user,
        created_at=start + timedelta(seconds=10),
        content=[
            {
                "type": "tool_result",
                "tool_use_id": "toolu_blk_1",
                "is_error": True,
                "content": "price feed exploded",
            }
        ],
    )
    _msg, analysis, run = await messages.add_assistant_message_with_analysis(
        org,
        BLOCKS_THREAD,
        user_id=user,
        message_id="blk-a",
        created_at=start + timedelta(seconds=15),
        content=[
            {"type": "text", "text": "Here is the answer."},
            {
                "type": "citation",
                "cited_text": "ZZTOP closing prices, 17 days",
                "title": "Quote vendor archive",
                "url": "https://quotes.example/zztop",
            },
            {
                "type": "structured_data",
                "name": "zz summary",
                "columns": ["metric", "amount"],
                "data": {"rows": [["sharpe_ratio_cell", 1.75], ["max_gap_cell", 42]]},
            },
            {"type": "image_ref", "url": "https://img.example/chart.png", "alt_text": "zz chart"},
        ],
        analysis={
            "title": "ZZTOP sharpe study",
            "result": {
                "description": "Risk-adjusted return",
                "body": [
                    {"key": "sharpe_key", "value": "1.75", "description": "annualised_desc"},
                ],
            },
        },
        execution={"question": "sharpe of ZZTOP?", "generated_script": "sharpe('ZZTOP')"},
    )
    await executions.transition(org, run.execution_id, "running")
    await executions.transition(org, run.execution_id, "success", execution_ms=4321)
    thread = await Thread.find_one({"org_id": org, "thread_id": BLOCKS_THREAD})
    return {"thread": thread, "analysis": analysis, "execution": run}


async def thread_pk(org: str) -> str:
    thread = await Thread.find_one({"org_id": org})
    return str(thread.id)


def row_pks(html: str, key: str) -> set[str]:
    """The primary keys of the rows of a list page (each row links to its detail page)."""
    found = re.findall(rf"/admin/{key}/detail\?pk=([A-Za-z0-9_.:@~%-]+)", html)
    return {unquote(pk) for pk in found}


def shown_total(html: str) -> str:
    found = re.search(r"Showing \S+ to \S+ of (\S+) entries", html)
    assert found, "no pagination summary on the page"
    return found.group(1)


def dashboard_counts(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-count="(\w+)">([^<]*)<', html))


def is_login_redirect(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith(
        "http://testserver/admin/login"
    )


async def ids(model, query: dict) -> set[str]:
    return {str(d.id) for d in await model.find(query).to_list()}
