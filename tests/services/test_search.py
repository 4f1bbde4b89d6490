"""Full-text search gives the same answers in every search mode and on every server.

Each test runs once per mode the session's server offers: `text` ($text over text indexes:
nx-27017, real MongoDB) and `terms` (words on the document under a multikey index: every
server; the only mode on SecantusDB). The expected answers are written once, so a mode or a
server that answers differently fails here. Where MongoDB itself answers differently from a
mode, the test says so.
"""

from __future__ import annotations

import os

import pytest

from chatadmin import search
from chatadmin.indexes import build_search, declared_indexes, signature_of_spec
from chatadmin.models import Analysis, Message
from chatadmin.services import analyses, messages, threads
from chatadmin.testservers import SECANTUS, selected_server


def pytest_generate_tests(metafunc):
    if "search_mode" in metafunc.fixturenames:
        # SecantusDB has no text indexes; every other server (real MongoDB included) has both.
        no_text = not os.environ.get("MONGODB_URI") and selected_server() == SECANTUS
        modes = [search.TERMS] if no_text else [search.TEXT, search.TERMS]
        metafunc.parametrize("search_mode", modes, indirect=True)


@pytest.fixture
async def search_mode(request, database):
    """The session database in `request.param` mode, its search indexes made for it."""
    native, wanted = search.mode(), request.param
    search.use(wanted)
    made = await build_search(database.db)
    yield wanted
    search.use(native)
    if wanted != native:  # leave the database as the rest of the suite expects it
        for model in (Message, Analysis):
            extra = {signature_of_spec(ix.document) for ix in declared_indexes(model, wanted)}
            extra -= {signature_of_spec(ix.document) for ix in declared_indexes(model, native)}
            coll = database.db[model.Settings.name]
            for name, spec in (await coll.index_information()).items():
                if signature_of_spec(spec) in extra:
                    await coll.drop_index(name)
    assert made[0].startswith(f"search mode: {wanted}")


CORPUS = {
    "m-aapl": "What was AAPL's 30-day volatility last month?",
    "m-answer": "AAPL **volatility** was 46.96% over the last 30 trading days.",
    "m-nvda": "NVDA drawdown: the worst since 2022, volatility rose too.",
    "m-accent": "Énergie renouvelable à Zürich — coûts en hausse",
    "m-code": "Run fetch_prices(symbol='TSLA') then plot_series()",
    "m-plain": "Thanks, that is all for today.",
}
QUERIES = {
    "volatility": {"m-aapl", "m-answer", "m-nvda"},
    "VOLATILITY": {"m-aapl", "m-answer", "m-nvda"},
    "aapl volatility": {"m-aapl", "m-answer"},
    "volatility aapl": {"m-aapl", "m-answer"},  # order does not matter
    "aapl drawdown": set(),  # every word must match
    "aapl -volatility": {"m-aapl", "m-answer"},  # search syntax is plain text
    '"aapl" or "nvda"': set(),  # "or" is a stop word; the others must both match
    "energie zurich": {"m-accent"},  # accents and case folded
    "Énergie": {"m-accent"},
    "46.96%": {"m-answer"},
    "fetch_prices": {"m-code"},  # underscores split words
    "tsla": {"m-code"},
    "the": set(),  # only stop words: nothing to look for
    "!!! ???": set(),
    "volatil": set(),  # whole words only (no prefix match)
    "zzqqxx": set(),
}


async def _corpus() -> dict[str, str]:
    """The corpus as messages of two threads of org-a, plus a decoy in org-b."""
    first = await threads.create_thread("org-a", "u1", thread_id="t1")
    second = await threads.create_thread("org-a", "u2", thread_id="t2")
    for i, (mid, text) in enumerate(CORPUS.items()):
        thread = first if i % 2 else second
        await messages.append_message(
            "org-a", thread.thread_id, message_id=mid, role="user", content=text
        )
    await threads.create_thread("org-b", "u9", thread_id="t1")
    await messages.append_message(
        "org-b", "t1", message_id="m-other", role="user", content="AAPL volatility in another org"
    )
    return CORPUS


async def _message_ids(q: str, org: str | None = "org-a") -> set[str]:
    matching = search.condition(q)
    if matching is None:
        return set()
    query = {**({"org_id": org} if org else {}), **matching}
    return {m.message_id for m in await Message.find(query).to_list()}


async def test_message_search_answers_the_same_in_every_mode(search_mode):
    await _corpus()
    for q, expected in QUERIES.items():
        assert await _message_ids(q) == expected, (search_mode, q)


async def test_message_search_across_orgs_for_unscoped_staff(search_mode):
    await _corpus()
    assert await _message_ids("aapl volatility", org=None) == {"m-aapl", "m-answer", "m-other"}


async def test_terms_are_kept_only_in_terms_mode(search_mode):
    await threads.create_thread("org-a", "u1", thread_id="t1")
    msg = await messages.append_message("org-a", "t1", role="user", content="The AAPL rally")
    stored = await Message.get_pymongo_collection().find_one({"_id": msg.id})
    expected = ["aapl", "rally"] if search_mode == search.TERMS else None  # empty: left out
    assert stored.get("search_terms") == expected


async def test_analysis_search_over_title_and_description(search_mode):
    by_title = await analyses.create_analysis(
        "org-a", title="Salary volatility report", description="monthly payroll"
    )
    by_desc = await analyses.create_analysis(
        "org-a", title="Team overview", description="includes salary bands"
    )
    await analyses.create_analysis("org-a", title="Office locations", description="desks")
    await analyses.create_analysis("org-b", title="Salary", description="salary")
    found = await analyses.search_analyses("org-a", q="salary")
    assert {a.analysis_id for a in found} == {by_title.analysis_id, by_desc.analysis_id}
    assert [a.analysis_id for a in await analyses.search_analyses("org-a", q="bands")] == [
        by_desc.analysis_id
    ]
    assert await analyses.search_analyses("org-a", q="payroll bands") == []


async def test_words_split_across_title_and_description(search_mode, server_kind):
    """MongoDB matches each quoted word in any indexed field, as terms mode does; nx-27017's
    $text wants every word in one field (docs/mongo-compat.md)."""
    split = await analyses.create_analysis("org-a", title="Payroll", description="salary bands")
    found = {a.analysis_id for a in await analyses.search_analyses("org-a", q="payroll bands")}
    nx_text = search_mode == search.TEXT and server_kind == "nx-27017"
    assert found == (set() if nx_text else {split.analysis_id})


async def test_ranking_is_by_score_in_text_mode_and_newest_first_in_terms_mode(search_mode):
    strong = await analyses.create_analysis(
        "org-a", title="Turnover", description="turnover by team, turnover by month"
    )
    weak = await analyses.create_analysis(
        "org-a", title="Quarterly report", description="many things; turnover is mentioned once"
    )
    found = [a.analysis_id for a in await analyses.search_analyses("org-a", q="turnover")]
    if search_mode == search.TEXT:
        assert found == [strong.analysis_id, weak.analysis_id]  # best match first
    else:
        assert found == [weak.analysis_id, strong.analysis_id]  # newest first


async def test_ingest_updates_keep_terms_of_the_fields_they_do_not_change(
    search_mode, client, make_key
):
    headers = await make_key("org-a", "ingest", "read")
    event = {
        "type": "analysis",
        "id": "an-1",
        "data": {"title": "Headcount", "description": "by department"},
    }
    assert (await client.post("/api/v1/ingest", json={"events": [event]}, headers=headers)).json()
    event["data"] = {"title": "Attrition"}
    answer = await client.post("/api/v1/ingest", json={"events": [event]}, headers=headers)
    assert answer.json()["results"][0]["status"] == "updated"
    assert [a.analysis_id for a in await analyses.search_analyses("org-a", q="attrition")] == [
        "an-1"
    ]
    assert [a.analysis_id for a in await analyses.search_analyses("org-a", q="department")] == [
        "an-1"
    ]
    assert await analyses.search_analyses("org-a", q="headcount") == []


async def test_messages_updated_through_ingest_are_found_by_their_new_words(
    search_mode, client, make_key
):
    headers = await make_key("org-a", "ingest", "read")
    event = {
        "type": "message",
        "id": "m1",
        "data": {"thread_id": "t1", "user_id": "u1", "role": "user", "content": "draft"},
    }
    for content in ("first draft", "final wording"):
        event["data"]["content"] = content
        assert (
            await client.post("/api/v1/ingest", json={"events": [event]}, headers=headers)
        ).status_code == 200
    assert await _message_ids("wording") == {"m1"}
    assert await _message_ids("draft") == set()


async def test_build_search_fills_terms_of_documents_written_before(database, search_mode):
    """Documents stored without terms (written in text mode, or before migration 0003) are
    found in terms mode once `build_search` ran (`manage.py migrate --rebuild-search`)."""
    await Message.get_pymongo_collection().insert_one(
        {
            "_id": "old",
            "org_id": "org-a",
            "message_id": "old",
            "thread_id": "t",
            "seq": 0,
            "role": "user",
            "text": "legacy volatility note",
            "search_terms": [],
            "deleted": False,
        }
    )
    changes = await build_search(database.db)
    if search_mode == search.TERMS:
        assert "search terms of 1 chat_messages documents computed" in changes
    assert await _message_ids("legacy volatility") == {"old"}
    again = await build_search(database.db)
    assert "search terms of 0 chat_messages documents computed" in again or (
        search_mode == search.TEXT
    )


async def test_terms_are_bounded_per_document():
    many = " ".join(f"word{i}" for i in range(search.MAX_TERMS + 500))
    terms = search.document_terms(many, "word1 extra")
    assert len(terms) == search.MAX_TERMS and terms[:2] == ["word0", "word1"]
    assert search.document_terms("x" * 200) == ["x" * search.MAX_WORD]
    assert search.query_words("a " + "y" * 100) == ["y" * search.MAX_WORD]


def test_query_words_are_plain_words_longest_first():
    assert search.query_words('say "hello" -world {"$regex": 1} the') == [
        "hello",
        "world",
        "regex",
        "say",
        "1",
    ]
    assert len(search.query_words(" ".join(f"w{i}" for i in range(50)))) == search.MAX_QUERY_WORDS
