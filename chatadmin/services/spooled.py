"""Writes accepted while MongoDB is down: what goes into the spool, and how it is applied
when MongoDB returns, through the same doors as live writes (`ingest`, and the REST append
with its audit entry), so a replayed write obeys every rule a live one does.

Records are idempotent by their ids (events carry theirs; a spooled append gets its
`message_id` when it is accepted), so replaying a segment again after a crash writes nothing
twice. A record that the service refuses when replayed (its thread is gone, say) is kept in
`rejected.jsonl` beside the spool with the reason, and logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import asdict
from typing import Any

from chatadmin.background import pause, stopping
from chatadmin.clock import now_ms
from chatadmin.exceptions import ChatAdminError, Conflict
from chatadmin.models import Message
from chatadmin.outage import DATABASE_DOWN, Outage
from chatadmin.services import audit, messages
from chatadmin.services.ingest import Batch, EventIn, ingest
from chatadmin.spool import Spool

log = logging.getLogger("chatadmin.spool")
REPLAY_INTERVAL_S = 0.5


def ingest_record(org_id: str, actor: audit.Actor, events: list[EventIn]) -> dict:
    """An ingest batch as the spool keeps it."""
    return {
        "kind": "ingest",
        "org_id": org_id,
        "actor": asdict(actor),
        "events": [e.model_dump(mode="json") for e in events],
        "accepted_at_ms": now_ms(),
    }


def message_record(org_id: str, actor: audit.Actor, thread_id: str, fields: dict) -> dict:
    """A REST append as the spool keeps it (`fields` carry the message id)."""
    return {
        "kind": "message",
        "org_id": org_id,
        "actor": asdict(actor),
        "thread_id": thread_id,
        "fields": fields,
        "accepted_at_ms": now_ms(),
    }


async def apply(record: dict, settings: Any) -> list[str]:
    """Apply one record through its door; the problems it met (empty when all went in)."""
    actor = audit.Actor(**record["actor"])
    org_id = record["org_id"]
    if record["kind"] == "ingest":
        batch = Batch(
            org_id=org_id,
            actor=actor,
            max_message_bytes=settings.chatadmin_max_message_bytes,
            context_ttl_days=settings.chatadmin_context_ttl_days,
        )
        results = await ingest(batch, [EventIn.model_validate(e) for e in record["events"]])
        return [f"{r.type} {r.id}: {r.error.message}" for r in results if r.status == "error"]
    fields, thread_id = dict(record["fields"]), record["thread_id"]
    try:
        message = await messages.append_message(
            org_id, thread_id, max_bytes=settings.chatadmin_max_message_bytes, **fields
        )
    except Conflict as exc:
        if "already exists" in str(exc):
            return []  # applied by an earlier replay
        return [f"message {fields.get('message_id')}: {exc}"]
    except ChatAdminError as exc:
        return [f"message {fields.get('message_id')}: {exc}"]
    summary = {"thread_id": thread_id, "seq": message.seq, "role": message.role}
    target = audit.Resource(Message.RESOURCE, message.message_id, org_id)
    await audit.record(actor, "message_created", target, None, summary,
                       metadata={"spooled_at_ms": record["accepted_at_ms"]})  # fmt: skip
    return []


def _reject(spool: Spool, record: dict, problems: list[str]) -> None:
    line = json.dumps({"record": record, "problems": problems}, ensure_ascii=False)
    path = spool.dir / "rejected.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    log.warning("spooled %s for org %s refused when replayed: %s",
                record["kind"], record["org_id"], "; ".join(problems)[:500])  # fmt: skip


async def replay(spool: Spool, settings: Any) -> dict[str, int]:
    """Apply every claimable segment, oldest first; stops (keeping the rest) when MongoDB
    goes away again."""
    done = {"segments": 0, "records": 0, "rejected": 0}
    for segment in spool.claim():
        try:
            for record in segment.records():
                try:
                    problems = await apply(record, settings)
                except DATABASE_DOWN:
                    raise
                except Exception as exc:  # a record no door accepts: kept aside, not retried
                    log.exception("spooled record could not be applied")
                    problems = [f"{type(exc).__name__}: {exc}"]
                if problems:
                    _reject(spool, record, problems)
                    done["rejected"] += 1
                done["records"] += 1
        except DATABASE_DOWN:
            segment.release()  # replayed again later, from its start: records are idempotent
            raise
        except BaseException:
            segment.release()
            raise
        segment.done()
        done["segments"] += 1
    if done["records"]:
        log.info("spool replayed: %d records from %d segments (%d refused)",
                 done["records"], done["segments"], done["rejected"])  # fmt: skip
    return done


async def run_forever(spool: Spool, settings: Any, database: Any, outage: Outage) -> None:
    """The app's replay loop: every `REPLAY_INTERVAL_S`, when there is something to replay or the
    database was seen down, probe it and replay."""
    while True:
        await pause(REPLAY_INTERVAL_S)
        if not (outage.down_until or spool.status()["segments"]):
            continue
        try:  # bounded by the client's timeouts: a slow answer is a busy server, not an outage
            await database.ping()
        except Exception as exc:  # not answering: the next round tries again
            if stopping():
                raise asyncio.CancelledError from exc
            outage.failed()
            continue
        outage.recovered()
        try:
            await replay(spool, settings)
        except Exception as exc:
            if stopping():
                raise asyncio.CancelledError from exc
            if isinstance(exc, DATABASE_DOWN):
                outage.failed(exc)
            else:  # keep the loop alive; the segment stays for the next round
                log.exception("spool replay failed")
