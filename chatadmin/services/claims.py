"""Seq claims: what a thread remembers of the messages whose seqs were reserved, so that
concurrent writers of the same messages reserve them once, and a writer that died between its
reservation and its insert leaves seqs that a retry of the same messages fills in, not a gap.

Every reservation `$push`es one claim (a short digest of the message id) per seq it reserves,
in seq order, keeping the newest `CLAIMS_KEPT`; claims leave a thread only from its end,
together with the seqs they held (a failed reservation at the tail, given back). So while a
thread holds one claim for each of its newest seqs (`aligned`), its claim at index `i` holds seq
`next_seq - len(claims) + i`. Threads whose claims were pulled from the middle by an earlier
version are not aligned: their orphans are reserved again (a gap, as before).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from chatadmin.models.thread import CLAIMS_KEPT


def claim_of(message_id: str) -> str:
    """The short digest a thread keeps of a message whose seq was reserved."""
    return hashlib.blake2b(message_id.encode(), digest_size=8).hexdigest()


def aligned(thread: dict) -> bool:
    """Whether the thread holds exactly one claim for each of its newest seqs."""
    claims = thread.get("recent_claims") or []
    return len(claims) == min(int(thread.get("next_seq") or 0), CLAIMS_KEPT)


def reserved_seqs(thread: dict, message_ids: Iterable[str]) -> dict[str, int]:
    """The seq each message's claim holds on `thread` (a document with `next_seq` and
    `recent_claims`), for the messages still claimed there; empty when it is not aligned."""
    if not aligned(thread):
        return {}
    claims = thread.get("recent_claims") or []
    first = int(thread["next_seq"]) - len(claims)
    where = {claim: first + i for i, claim in enumerate(claims)}
    found = {}
    for mid in message_ids:
        seq = where.get(claim_of(mid))
        if seq is not None:
            found[mid] = seq
    return found
