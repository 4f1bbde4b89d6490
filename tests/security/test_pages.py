"""What a page may reveal and how much it may weigh: masked fields cannot be probed by filters,
sorts or searches; a transcript page stays small however large its messages; odd numbers in
the address are not a 500."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from chatadmin import markdown
from chatadmin.services import messages, threads
from tests.admin.pages import row_pks

PROBES = [
    {"filter": 'email__startswith="s"'},
    {"filter": 'username__contains="a"'},
    {"filter": 'display_name__startswith="A"'},
    {"filter": 'metadata.email__startswith="a"'},
    {"sort": "email__asc"},
    {"sort": "username__desc"},
]


@pytest.mark.parametrize("params", PROBES)
async def test_a_viewer_cannot_filter_or_sort_by_masked_fields(block, login_as, params):
    viewer = await login_as("viewer")
    refused = await viewer.get("/admin/users/list", params=params)
    assert refused.status_code == 400, refused.text[:300]
    if "metadata." not in str(params):  # not a field of the view: refused before ours
        assert "viewers cannot" in refused.text


async def test_a_viewer_may_still_filter_by_other_fields(block, login_as):
    viewer = await login_as("viewer")
    page = await viewer.get("/admin/users/list", params={"filter": 'org_id__eq="acme"'})
    assert page.status_code == 200
    assert len(row_pks(page.text, "users")) == 4


async def test_an_admin_may_filter_by_email(block, login_as):
    admin = await login_as("admin")
    page = await admin.get("/admin/users/list", params={"filter": 'email__startswith="zzz"'})
    assert page.status_code == 200


async def test_a_viewer_search_ignores_masked_fields(block, login_as):
    viewer, admin = await login_as("viewer"), await login_as("admin")
    by_admin = row_pks((await admin.get("/admin/users/list", params={"q": "@acme"})).text, "users")
    by_viewer = row_pks(
        (await viewer.get("/admin/users/list", params={"q": "@acme"})).text, "users"
    )
    assert by_admin and not by_viewer


@pytest.mark.parametrize("page", ["4000000000000000000", "99999999999999999999999"])
async def test_a_page_number_past_int64_is_an_empty_page(block, login_as, page):
    admin = await login_as("admin")
    answer = await admin.get("/admin/threads/list", params={"page": page})
    assert answer.status_code in (200, 400), answer.text[:300]


async def test_a_23_digit_from_on_the_conversation_page(block, login_as):
    admin = await login_as("admin")
    thread = block["thread"]
    answer = await admin.get(
        f"/admin/conversations/{thread.thread_id}",
        params={"org": thread.org_id, "from": "1" * 23},
    )
    assert answer.status_code == 200
    assert "No messages in this range" in answer.text


async def test_a_page_of_huge_messages_stays_small(app, login_as, settings):
    await threads.create_thread("acme", "u-huge", thread_id="huge-thread", title="Huge")
    big = "word " * 90_000  # 450 KB of text per message (stored twice: text and content)
    for _ in range(6):
        await messages.append_message("acme", "huge-thread", role="assistant", content=big)
    admin = await login_as("admin")
    page = await admin.get("/admin/conversations/huge-thread", params={"org": "acme"})
    assert page.status_code == 200
    assert len(page.content) < 6 * 3 * settings.chatadmin_page_text_chars + 200_000 < 6 * len(big)
    assert page.text.count("Show all") == 6
    full = await admin.get(
        "/admin/conversations/huge-thread/messages/2.txt", params={"org": "acme"}
    )
    assert full.status_code == 200
    assert full.headers["content-type"].startswith("text/plain")
    assert full.text == big
    other_org = await login_as("admin", org_id="globex")
    hidden = await other_org.get(
        "/admin/conversations/huge-thread/messages/2.txt", params={"org": "acme"}
    )
    assert hidden.status_code == 404


async def test_the_markdown_export_cannot_break_out_or_link_to_scripts(app, login_as):
    await threads.create_thread("acme", "u-md", thread_id="md-thread", title="<b>T</b>")
    hostile = "```\n<script>alert(1)</script>\n``` [x](javascript:alert(1)) <img src=x onerror=y>"
    await messages.append_message("acme", "md-thread", role="user", content=hostile)
    await messages.append_message(
        "acme",
        "md-thread",
        role="assistant",
        content=[{"type": "tool_use", "id": "t1", "name": "run", "input": {"code": "```\nx"}}],
    )
    admin = await login_as("admin")
    answer = await admin.get("/admin/conversations/md-thread/export.md", params={"org": "acme"})
    assert answer.status_code == 200
    text = answer.text
    assert "<script>" not in text and "<img" not in text and "<b>" not in text
    assert "javascript:" not in text
    # The tool input's own fence cannot close the export's: a longer fence wraps it.
    assert "````json\n{\n" in text
    # Rendered again as Markdown, the export is inert.
    for tag, attrs in _elements(str(markdown.render(text))):
        assert tag in markdown.TAGS
        assert not [name for name, _ in attrs if name.startswith("on")]


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[a](javascript:alert(1))",
        "[a](JAVASCRIPT:alert(1))",
        "[a](java\tscript:alert(1))",
        "[a](data:text/html,<script>alert(1)</script>)",
        "[a](vbscript:x)",
        "<a href='javascript:alert(1)'>a</a>",
        "[a]: javascript:alert(1)\n\n[a]",
        "<svg onload=alert(1)>",
        "<iframe src='https://evil.example'></iframe>",
        '<div style="background:url(javascript:alert(1))">x</div>',
        "![x](https://tracker.example/p.png)",
        '```" onmouseover="alert(1)\ncode\n```',
        "<<script>script>alert(1)<</script>/script>",
        "[a](/admin/logout)",
    ],
)
def test_the_renderer_lets_nothing_active_through(source):
    """Whatever the text says, the HTML holds only harmless elements: escaped text is fine."""
    elements = _elements(str(markdown.render(source)))
    for tag, attrs in elements:
        assert tag in markdown.TAGS, (source, tag)
        for name, value in attrs:
            assert (not name.startswith("on") and name != "style") or tag in ("th", "td"), source
            if name in ("href", "src"):
                assert value.startswith(("https://", "http://", "mailto:")), (source, value)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))


def _elements(html: str) -> list[tuple[str, list]]:
    parser = _Collect()
    parser.feed(html)
    return parser.found


def test_the_renderer_keeps_what_models_write():
    html = str(
        markdown.render("**b** _i_ `c`\n\n1. x\n2. y\n\n```sql\nselect 1\n```\n\n[d](https://e.x)")
    )
    assert "<strong>b</strong>" in html and "<em>i</em>" in html and "<code>c</code>" in html
    assert "<ol>" in html and '<code class="language-sql">' in html
    assert '<a href="https://e.x" rel="noopener noreferrer">d</a>' in html
    assert "<img" in str(markdown.render("![x](https://e.x/p.png)", images=True))
