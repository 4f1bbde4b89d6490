"""Full-text search that answers the same on every server.

Two modes, chosen per database when it is opened (`CHATADMIN_SEARCH_MODE`, default `auto`):

- `text`: MongoDB's `$text` over text indexes (real MongoDB, nx-27017).
- `terms`: the searchable fields' words are kept on the document (`search_terms`, lower-cased,
  accents removed, stop words dropped, at most `MAX_TERMS` distinct words) under a multikey
  index that also orders by time, and queried with `$in` (one word) or `$all` (servers without
  text indexes, such as SecantusDB). On MongoDB the index bounds the first (longest) word.

`auto` probes the server with a `$text` query (read-only) and takes `text` when it parses.
In both modes every query word must match and the words of a query are plain data: they are
tokenised here, so no client text becomes search syntax or a query operator.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

TEXT, TERMS = "text", "terms"
MODES = (TEXT, TERMS)
MAX_TERMS = 1000  # distinct words kept per document in terms mode
MAX_QUERY_WORDS = 20
MAX_WORD = 64  # longer words are cut to this length, in documents and queries alike
PROBE_COLLECTION = "chatadmin_search_probe"  # never created: the probe only reads

# MongoDB's English stop words (its text indexes skip them), split as our tokeniser splits.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are aren as at be because been before
    being below between both but by can cannot could couldn d did didn do does doesn doing don down
    during each few for from further had hadn has hasn have haven having he her here hers herself
    him himself his how i if in into is isn it its itself let ll m me more most mustn my myself no
    nor not of off on once only or other ought our ours ourselves out over own re s same shan she
    should shouldn so some such t than that the their theirs them themselves then there these they
    this those through to too under until up ve very was wasn we were weren what when where which
    while who whom why with won would wouldn you your yours yourself yourselves""".split()
)
_WORD = re.compile(r"[^\W_]+")

_state = {"mode": TEXT}


def mode() -> str:
    """The search mode of the open database."""
    return _state["mode"]


def use(new_mode: str) -> None:
    """Set the search mode (done by `Database.open`)."""
    if new_mode not in MODES:
        raise ValueError(f"search mode must be one of {', '.join(MODES)}")
    _state["mode"] = new_mode


def fold(text: str) -> str:
    """Lower case without accents ("Énergie" -> "energie"), as text indexes compare words."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The words of `text` in order: letters and digits, folded, cut to `MAX_WORD`."""
    return [w[:MAX_WORD] for w in _WORD.findall(fold(text))]


def document_terms(*texts: str | None) -> list[str]:
    """The distinct searchable words of a document's fields, first occurrences first."""
    seen: dict[str, None] = {}
    for text in texts:
        for word in words(text or ""):
            if word not in STOP_WORDS:
                seen.setdefault(word)
                if len(seen) >= MAX_TERMS:
                    return list(seen)
    return list(seen)


def query_words(q: str) -> list[str]:
    """The distinct words a query must match, longest (most selective) first."""
    found = list(dict.fromkeys(w for w in words(q) if w not in STOP_WORDS))[:MAX_QUERY_WORDS]
    return sorted(found, key=len, reverse=True)


def condition(q: str) -> dict[str, Any] | None:
    """The filter matching documents that hold every word of `q`; None if it has no word."""
    found = query_words(q)
    if not found:
        return None
    if mode() == TERMS:
        # One word as `$in`: SecantusDB reads only that shape from the multikey index (`$all`
        # or a second condition on the field makes it scan), and nx-27017 answers an equality
        # on an indexed array field wrongly. MongoDB bounds `$all` by its first word.
        if len(found) == 1:
            return {"search_terms": {"$in": found}}
        return {"search_terms": {"$all": found}}
    # Quoted words: MongoDB then requires each of them (unquoted words are OR-ed), and the
    # text cannot use negation or phrase syntax.
    return {"$text": {"$search": " ".join(f'"{w}"' for w in found)}}


def ranks_by_score() -> bool:
    """Whether matches can be ordered by relevance (text mode); else newest first."""
    return mode() == TEXT


async def server_has_text_search(db: AsyncDatabase) -> bool:
    """Whether the server understands `$text` (asked with a read of a collection that is
    never created; a server without text search refuses the operator itself)."""
    try:
        await db[PROBE_COLLECTION].find({"$text": {"$search": "probe"}}).to_list(1)
    except OperationFailure as exc:
        message = str(exc.details.get("errmsg", exc)) if exc.details else str(exc)
        if exc.code == 2 and "$text" in message:  # BadValue: unknown top level operator
            return False
        # Any other refusal (MongoDB: "text index required") means the operator is known.
    return True


async def resolve_mode(db: AsyncDatabase, wanted: str) -> str:
    """The mode to use: `wanted` (`auto`, `text` or `terms`), checked against the server."""
    if wanted == TERMS:
        return TERMS
    has_text = await server_has_text_search(db)
    if wanted == TEXT and not has_text:
        raise ValueError("CHATADMIN_SEARCH_MODE=text, but this server has no text search")
    return TEXT if has_text else TERMS


def describe(current: str | None = None) -> str:
    """One line for `check` and the logs."""
    current = current or mode()
    if current == TEXT:
        return "text ($text over text indexes)"
    return "terms (words kept on each document under a multikey index; no text indexes)"


async def backfill(collection: Any, fields: tuple[str, ...], batch: int = 500) -> int:
    """Recompute `search_terms` of every document of `collection` (terms mode); returns how
    many changed. Reads in `_id` order in batches, so it is resumable and memory stays flat."""
    from pymongo import UpdateOne

    changed, last = 0, None
    projection = {name: 1 for name in (*fields, "search_terms")}
    while True:
        query = {"_id": {"$gt": last}} if last is not None else {}
        docs = await collection.find(query, projection).sort("_id", 1).limit(batch).to_list()
        if not docs:
            return changed
        ops = []
        for doc in docs:
            terms = document_terms(*(doc.get(name) for name in fields))
            if doc.get("search_terms") != terms:
                ops.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"search_terms": terms}}))
        if ops:
            await collection.bulk_write(ops, ordered=False)
            changed += len(ops)
        last = docs[-1]["_id"]
