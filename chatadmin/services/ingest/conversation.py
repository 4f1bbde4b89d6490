"""Ingest handlers for messages (threads made on demand) and feedback, in bulk through the
same service functions as the REST API: `threads.create_threads`, `messages.insert_messages`,
`messages.update_messages` and `messages.give_feedback`."""

from __future__ import annotations

from pydantic import ValidationError

from chatadmin.clock import now_ms
from chatadmin.models import Message, Thread
from chatadmin.models.message import Feedback
from chatadmin.models.size import document_size
from chatadmin.services import messages as messages_service
from chatadmin.services import threads as threads_service
from chatadmin.services import users as users_service
from chatadmin.services.ingest.batch import Batch
from chatadmin.services.ingest.events import Event
from chatadmin.services.ingest.writes import existing_docs, fields_of, plan
from chatadmin.services.messages import Change, FeedbackGiven, build_message

MUTABLE = {
    "content", "text", "question_context", "query_type", "analysis_id", "analysis",
    "ai_metadata", "execution_id", "execution_status", "status", "error", "has_error",
    "references", "metadata",
}  # fmt: skip


async def messages(batch: Batch, events: list[Event]) -> None:
    ids = sorted({e.id for e in events})
    cursor = Message.find(Message.keyed(batch.org_id, ids))
    stored = {m.message_id: m for m in await cursor.to_list()}
    existing = {mid: {"ingest_hash": m.ingest_hash} for mid, m in stored.items()}
    creates, updates = plan(events, existing)
    built: dict[int, Message] = {}
    for ev in creates + updates:
        fields = fields_of(ev, "message_id", "thread_id")
        fields["content"] = ev.data.content
        try:
            msg = build_message(batch.org_id, ev.data.thread_id, message_id=ev.id, **fields)
        except ValidationError as exc:
            ev.fail("invalid", f"invalid message: {exc.errors()[0]['msg']}")
            continue
        size = document_size(msg)
        if size > batch.max_message_bytes:
            ev.fail("too_large", f"message is {size} bytes; the limit is {batch.max_message_bytes}")
            continue
        prior = stored.get(ev.id)
        if prior is not None and prior.thread_id != msg.thread_id:
            ev.fail("conflict", "a message cannot move to another thread")
            continue
        msg.ingest_hash = ev.hash
        built[ev.index] = msg
    creates = [ev for ev in creates if ev.index in built]
    owners = await ensure_threads(batch, [built[ev.index] for ev in creates], creates)
    creates = [ev for ev in creates if ev.result is None]
    if batch.limiter is not None:
        await limit_messages(batch, [(ev, built[ev.index]) for ev in creates], owners)
        creates = [ev for ev in creates if ev.result is None]

    inserted = await messages_service.insert_messages(
        batch.org_id, [built[ev.index] for ev in creates], effects=batch.effects, known_new=True
    )
    for ev, done in zip(creates, inserted, strict=True):
        if done.status == "created":
            ev.done("created")
        elif done.status == "exists":
            ev.done("unchanged")  # the same event, stored by a concurrent retry of it
        elif done.status == "not_found":
            ev.fail("not_found", done.reason)
        else:
            ev.fail("write_failed", done.reason)

    changes: list[tuple[Event, Change]] = []
    for ev in updates:
        if ev.index in built:
            prior, msg = stored[ev.id], built[ev.index]
            msg.id, msg.seq, msg.user_id = prior.id, prior.seq, msg.user_id or prior.user_id
            msg.deleted, msg.feedback = prior.deleted, prior.feedback
            changes.append((ev, Change(prior, msg, MUTABLE | {"ingest_hash"})))
    await messages_service.update_messages(
        batch.org_id, [c for _, c in changes], effects=batch.effects
    )
    for ev, change in changes:
        if change.status == "conflict":
            ev.fail("conflict", f"message {ev.id!r} was written concurrently; retry")
        else:
            ev.done("updated")
    for ev in creates + [ev for ev, _ in changes]:
        if ev.result is not None and ev.result.status != "error":
            batch.messages_written.setdefault(ev.result.status, []).append(ev.id)


async def ensure_threads(batch: Batch, msgs: list[Message], events: list[Event]) -> dict[str, str]:
    """Create the threads that messages name but that do not exist yet (one bulk write);
    returns the owner of each thread."""
    wanted = sorted({m.thread_id for m in msgs})
    if not wanted:
        return {}
    found = await existing_docs(Thread, batch.org_id, "thread_id", wanted, ("status", "user_id"))
    missing: dict[str, Thread] = {}
    for msg, ev in zip(msgs, events, strict=True):
        prior = found.get(msg.thread_id)
        if prior is not None:
            if prior["status"] == "deleted":
                ev.fail("not_found", f"thread {msg.thread_id!r} is deleted")
            continue
        if msg.thread_id in missing:
            continue
        if not msg.user_id:
            ev.fail(
                "invalid",
                f"thread {msg.thread_id!r} does not exist and the message has no "
                "user_id to create it with",
            )
            continue
        title = (msg.text.strip().splitlines() or ["Untitled conversation"])[0][:80]
        missing[msg.thread_id] = threads_service.new_thread(
            batch.org_id,
            msg.user_id,
            thread_id=msg.thread_id,
            title=title or "Untitled conversation",
            initial_source="ingest",
            created_at=msg.created_at,
        )
    # A thread made meanwhile by a concurrent batch is skipped: that batch counts it.
    await threads_service.create_threads(
        batch.org_id, list(missing.values()), effects=batch.effects
    )
    owners = {tid: doc.get("user_id") for tid, doc in found.items()}
    return owners | {tid: t.user_id for tid, t in missing.items()}


async def limit_messages(
    batch: Batch, pending: list[tuple[Event, Message]], owners: dict[str, str]
) -> None:
    """Count the new messages against each user's windows; refuse only those over a limit."""
    by_user: dict[str, list[Event]] = {}
    for ev, msg in pending:
        user = msg.user_id or owners.get(msg.thread_id)
        if user:
            by_user.setdefault(user, []).append(ev)
    roles = await users_service.roles_of(batch.org_id, set(by_user))
    for user, evs in by_user.items():
        taken = await batch.limiter.messages(batch.org_id, user, roles.get(user), len(evs))
        for ev in evs[taken.allowed :]:
            ev.fail(
                "rate_limited",
                f"user {user!r} sent too many messages; retry in {taken.reset_s} s",
                [{"retry_after": max(1, taken.reset_s), "limit": taken.limit}],
            )


async def feedback(batch: Batch, events: list[Event]) -> None:
    items = [
        FeedbackGiven(
            ev.id,
            Feedback(**ev.data.model_dump(exclude={"message_id"}), submitted_at_ms=now_ms()),
        )
        for ev in events
    ]
    await messages_service.give_feedback(batch.org_id, items, effects=batch.effects)
    for ev, item in zip(events, items, strict=True):
        if item.status == "not_found":
            ev.fail("not_found", f"message {ev.id!r} not found")
        elif item.status == "conflict":
            ev.fail("conflict", f"message {ev.id!r} was written concurrently; retry")
        else:
            ev.done(item.status)
            if item.status != "unchanged":
                after = item.feedback.model_dump(mode="json")
                batch.audited(ev, f"feedback_{item.status}", after)
