"""Analyses: tenant-scoped create/get, full-text search, templates and reuse, saved analyses."""

import asyncio
from datetime import timedelta

import pytest

from chatadmin.clock import to_ms, utcnow
from chatadmin.exceptions import Conflict, Invalid, NotFound
from chatadmin.models import Analysis, SavedAnalysis
from chatadmin.services import analyses

pytestmark = pytest.mark.usefixtures("database")


async def _analysis(org="org-a", **kw) -> Analysis:
    kw.setdefault("title", "Untitled analysis")
    return await analyses.create_analysis(org, **kw)


# --- create / get -------------------------------------------------------------------------


async def test_create_and_get_round_trip():
    a = await _analysis(
        title="Headcount by team",
        description="Active employees per team",
        result={"description": "top teams", "body": [{"key": "Sales", "value": 42}]},
        parameters={"as_of": "2024-01-01"},
        tags=["hr"],
        user_id="u1",
    )
    got = await analyses.get_analysis("org-a", a.analysis_id)
    assert got.title == "Headcount by team" and got.user_id == "u1"
    assert got.result.body[0].key == "Sales" and got.result.body[0].value == 42
    assert got.parameters == {"as_of": "2024-01-01"} and got.tags == ["hr"]
    assert got.usage_count == 0 and got.last_used_at is None and got.is_template is False


async def test_get_from_another_org_or_unknown_is_not_found():
    a = await _analysis()
    with pytest.raises(NotFound):
        await analyses.get_analysis("org-b", a.analysis_id)
    with pytest.raises(NotFound):
        await analyses.get_analysis("org-a", "missing")


async def test_duplicate_analysis_id_conflicts_per_org_only():
    await _analysis(analysis_id="an-1", title="first")
    with pytest.raises(Conflict):
        await _analysis(analysis_id="an-1", title="second")
    await _analysis(org="org-b", analysis_id="an-1", title="other org")
    assert (await analyses.get_analysis("org-a", "an-1")).title == "first"
    assert (await analyses.get_analysis("org-b", "an-1")).title == "other org"


# --- search -------------------------------------------------------------------------------


async def test_full_text_search_never_returns_another_orgs_analyses():
    await _analysis(title="Office locations", description="where people sit")
    await _analysis(org="org-b", title="Salary volatility report", description="salary salary")
    assert await analyses.search_analyses("org-a", q="salary") == []


async def test_blank_search_text_lists_newest_first():
    base = utcnow() - timedelta(minutes=10)
    old = await _analysis(title="old", created_at=base)
    new = await _analysis(title="new", created_at=base + timedelta(minutes=1))
    found = await analyses.search_analyses("org-a", q="   ")
    assert [a.analysis_id for a in found] == [new.analysis_id, old.analysis_id]


async def test_search_text_over_500_characters_is_invalid():
    with pytest.raises(Invalid):
        await analyses.search_analyses("org-a", q="x" * 501)


async def test_tag_filter_matches_any_element_of_the_tags_array():
    both = await _analysis(title="both", tags=["hr", "finance"])
    hr_last = await _analysis(title="hr last", tags=["ops", "hr"])
    await _analysis(title="finance only", tags=["finance"])
    await _analysis(title="untagged")
    await _analysis(org="org-b", title="other org", tags=["hr"])
    found = await analyses.search_analyses("org-a", tag="hr")
    assert {a.analysis_id for a in found} == {both.analysis_id, hr_last.analysis_id}
    # The tag is a value, never an operator or a prefix.
    assert await analyses.search_analyses("org-a", tag="h") == []
    assert await analyses.search_analyses("org-a", tag="other") == []


async def test_search_without_text_is_newest_first_and_filters_user_and_reusable():
    base = utcnow() - timedelta(hours=1)
    old = await _analysis(title="old", user_id="u1", created_at=base)
    new = await _analysis(title="new", user_id="u1", created_at=base + timedelta(minutes=5))
    tpl = await _analysis(
        title="tpl", user_id="u2", is_template=True, created_at=base + timedelta(minutes=2)
    )
    everything = await analyses.search_analyses("org-a")
    assert [a.title for a in everything] == ["new", "tpl", "old"]
    mine = await analyses.search_analyses("org-a", user_id="u1")
    assert [a.analysis_id for a in mine] == [new.analysis_id, old.analysis_id]
    templates = await analyses.search_analyses("org-a", reusable=True)
    assert [a.analysis_id for a in templates] == [tpl.analysis_id]
    non_templates = await analyses.search_analyses("org-a", reusable=False)
    assert {a.analysis_id for a in non_templates} == {old.analysis_id, new.analysis_id}
    assert len(await analyses.search_analyses("org-a", limit=2)) == 2


# --- reusable templates -------------------------------------------------------------------


async def test_reusable_lists_only_templates_most_recently_used_first():
    a = await _analysis(title="a", is_template=True, user_id="u1")
    b = await _analysis(title="b", is_template=True, user_id="u2")
    c = await _analysis(title="c", is_template=True, user_id="u1")
    await _analysis(title="not a template", user_id="u1")
    await _analysis(org="org-b", title="other org", is_template=True)
    await analyses.reuse_analysis("org-a", b.analysis_id)
    await asyncio.sleep(0.005)
    await analyses.reuse_analysis("org-a", a.analysis_id)
    listed = await analyses.reusable_analyses("org-a")
    assert [x.analysis_id for x in listed][:2] == [a.analysis_id, b.analysis_id]
    assert {x.analysis_id for x in listed} == {a.analysis_id, b.analysis_id, c.analysis_id}
    mine = await analyses.reusable_analyses("org-a", user_id="u1")
    assert [x.analysis_id for x in mine] == [a.analysis_id, c.analysis_id]


async def test_can_reuse_templates_and_known_similar_queries_only():
    tpl = Analysis(org_id="org-a", title="t", is_template=True)
    plain = Analysis(org_id="org-a", title="p", similar_queries=["What is  the Headcount?"])
    assert analyses.can_reuse(tpl) and analyses.can_reuse(tpl, "anything at all")
    assert analyses.can_reuse(plain) is False
    assert analyses.can_reuse(plain, "  what is the\theadcount?  ") is True
    assert analyses.can_reuse(plain, "what is the headcount") is False  # no "?"
    assert analyses.can_reuse(plain, "something else") is False


async def test_reuse_analysis_counts_records_the_question_and_merges_parameters():
    a = await _analysis(
        title="Headcount", is_template=True, parameters={"team": "all", "as_of": "2024-01-01"}
    )
    before = to_ms(utcnow())
    updated, params = await analyses.reuse_analysis(
        "org-a", a.analysis_id, question="  Headcount in sales?  ", parameters={"team": "sales"}
    )
    assert params == {"team": "sales", "as_of": "2024-01-01"}
    assert updated.usage_count == 1
    assert updated.last_used_at_ms >= before and updated.last_used_at is not None
    assert updated.similar_queries == ["Headcount in sales?"]
    assert updated.parameters == {"team": "all", "as_of": "2024-01-01"}  # stored ones unchanged

    again, params = await analyses.reuse_analysis("org-a", a.analysis_id)
    assert again.usage_count == 2 and params == {"team": "all", "as_of": "2024-01-01"}
    assert again.similar_queries == ["Headcount in sales?"]  # no question, nothing appended
    stored = await analyses.get_analysis("org-a", a.analysis_id)
    assert stored.usage_count == 2 and stored.last_used_at_ms >= updated.last_used_at_ms


async def test_concurrent_reuses_all_count():
    a = await _analysis(title="t", is_template=True)
    await asyncio.gather(*[analyses.reuse_analysis("org-a", a.analysis_id) for _ in range(10)])
    assert (await analyses.get_analysis("org-a", a.analysis_id)).usage_count == 10


async def test_reuse_of_a_non_template_conflicts_unless_the_question_is_known():
    a = await _analysis(title="one-off", similar_queries=["how many people?"])
    with pytest.raises(Conflict):
        await analyses.reuse_analysis("org-a", a.analysis_id)
    with pytest.raises(Conflict):
        await analyses.reuse_analysis("org-a", a.analysis_id, question="something new")
    stored = await analyses.get_analysis("org-a", a.analysis_id)
    assert stored.usage_count == 0 and stored.last_used_at_ms == 0
    updated, _ = await analyses.reuse_analysis("org-a", a.analysis_id, question="How many People?")
    assert updated.usage_count == 1


async def test_reuse_from_another_org_is_not_found():
    a = await _analysis(title="t", is_template=True)
    with pytest.raises(NotFound):
        await analyses.reuse_analysis("org-b", a.analysis_id)
    assert (await analyses.get_analysis("org-a", a.analysis_id)).usage_count == 0


async def test_similar_queries_keep_only_the_latest_fifty():
    a = await _analysis(title="t", is_template=True)
    await Analysis.get_pymongo_collection().update_one(
        {"analysis_id": a.analysis_id}, {"$set": {"similar_queries": [f"q{i}" for i in range(50)]}}
    )
    updated, _ = await analyses.reuse_analysis("org-a", a.analysis_id, question="q50")
    assert len(updated.similar_queries) == analyses.MAX_SIMILAR_QUERIES == 50
    assert updated.similar_queries[0] == "q1" and updated.similar_queries[-1] == "q50"


# --- saved analyses -----------------------------------------------------------------------


async def test_save_inherits_category_and_tags_and_lists_newest_first_per_user():
    a = await _analysis(title="Headcount", category="hr", tags=["people"])
    first = await analyses.save_analysis("org-a", "u1", a.analysis_id, "My headcount")
    assert first.category == "hr" and first.tags == ["people"] and first.usage_count == 0
    await asyncio.sleep(0.005)
    second = await analyses.save_analysis(
        "org-a", "u1", a.analysis_id, "Sales headcount", category="sales", tags=["s"]
    )
    assert second.category == "sales" and second.tags == ["s"]
    await analyses.save_analysis("org-a", "u2", a.analysis_id, "Theirs")
    mine = await analyses.list_saved("org-a", "u1")
    assert [s.saved_id for s in mine] == [second.saved_id, first.saved_id]
    assert len(await analyses.list_saved("org-a")) == 3
    assert await analyses.list_saved("org-b") == []


async def test_save_of_another_orgs_analysis_is_not_found():
    a = await _analysis()
    with pytest.raises(NotFound):
        await analyses.save_analysis("org-b", "u1", a.analysis_id, "stolen")
    assert await SavedAnalysis.find({}).count() == 0


async def test_saved_get_use_and_delete():
    a = await _analysis()
    saved = await analyses.save_analysis("org-a", "u1", a.analysis_id, "Mine")
    got = await analyses.get_saved("org-a", saved.saved_id)
    assert got.name == "Mine" and got.analysis_id == a.analysis_id
    with pytest.raises(NotFound):
        await analyses.get_saved("org-b", saved.saved_id)
    used = await analyses.use_saved("org-a", saved.saved_id)
    used = await analyses.use_saved("org-a", saved.saved_id)
    assert used.usage_count == 2 and used.last_used_at_ms > 0 and used.last_used_at is not None
    assert (await analyses.get_saved("org-a", saved.saved_id)).usage_count == 2
    with pytest.raises(NotFound):
        await analyses.use_saved("org-b", saved.saved_id)
    with pytest.raises(NotFound):
        await analyses.delete_saved("org-b", saved.saved_id)
    await analyses.delete_saved("org-a", saved.saved_id)
    with pytest.raises(NotFound):
        await analyses.get_saved("org-a", saved.saved_id)
    with pytest.raises(NotFound):
        await analyses.delete_saved("org-a", saved.saved_id)
    with pytest.raises(NotFound):
        await analyses.use_saved("org-a", saved.saved_id)
    assert (await analyses.get_analysis("org-a", a.analysis_id)).analysis_id == a.analysis_id


async def test_full_text_search_over_title_and_description_in_own_org_only():
    by_title = await _analysis(title="Salary volatility report", description="monthly payroll")
    by_desc = await _analysis(title="Team overview", description="includes salary bands")
    await _analysis(title="Office locations", description="where people sit")
    await _analysis(org="org-b", title="Salary volatility report", description="salary salary")
    found = await analyses.search_analyses("org-a", q="salary")
    assert {a.analysis_id for a in found} == {by_title.analysis_id, by_desc.analysis_id}
    assert all(a.org_id == "org-a" for a in found)
    only_desc = await analyses.search_analyses("org-a", q="bands")
    assert [a.analysis_id for a in only_desc] == [by_desc.analysis_id]


async def test_text_and_tag_filter_combine():
    hr = await _analysis(title="hr last", tags=["ops", "hr"])
    await _analysis(title="last", tags=["finance"])
    combined = await analyses.search_analyses("org-a", q="last", tag="hr")
    assert [a.analysis_id for a in combined] == [hr.analysis_id]


async def test_search_words_must_all_match_and_are_plain_text():
    both = await _analysis(title="AAPL volatility", description="thirty days")
    await _analysis(title="NVDA drawdown", description="volatility of chips")
    await _analysis(title="AAPL returns", description="against the index")
    found = await analyses.search_analyses("org-a", q="aapl volatility")
    assert [a.analysis_id for a in found] == [both.analysis_id]
    # search syntax in client text is data: a leading minus does not exclude anything
    negated = await analyses.search_analyses("org-a", q="aapl -volatility")
    assert [a.analysis_id for a in negated] == [both.analysis_id]
    assert await analyses.search_analyses("org-a", q="!!! ???") == []
