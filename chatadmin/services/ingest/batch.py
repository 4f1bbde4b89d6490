"""What one ingest batch shares while it is applied: who sends it, its limits, the side
effects gathered for one flush at the end, and its audit entries."""

from __future__ import annotations

from dataclasses import dataclass, field

from chatadmin.models import Message
from chatadmin.realtime.ratelimit import RateLimiter
from chatadmin.services import audit
from chatadmin.services.contexts import DEFAULT_TTL_DAYS
from chatadmin.services.effects import Effects
from chatadmin.services.ingest.events import Event
from chatadmin.services.messages import DEFAULT_MAX_MESSAGE_BYTES


@dataclass
class Batch:
    """The state of one batch being applied."""

    org_id: str
    actor: audit.Actor
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    context_ttl_days: int = DEFAULT_TTL_DAYS
    limiter: RateLimiter | None = None  # message rate limits per user (the API passes its own)
    effects: Effects = field(init=False)
    audit: list = field(default_factory=list)
    # Messages are audited once per batch and outcome (ids in the entry), not one per message.
    messages_written: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.effects = Effects(self.org_id)

    def audited(self, event: Event, action: str, after: dict | None = None) -> None:
        """An audit entry for one event's write."""
        kind = Message.RESOURCE if event.type == "feedback" else event.type
        target = audit.Resource(kind, event.id, self.org_id)
        meta = {"index": event.index}
        self.audit.append(audit.entry(self.actor, action, target, after=after, metadata=meta))

    def audit_messages(self) -> None:
        """One audit entry per outcome for the batch's messages, naming their ids."""
        for status, ids in self.messages_written.items():
            target = audit.Resource(Message.RESOURCE, None, self.org_id)
            self.audit.append(
                audit.entry(
                    self.actor,
                    f"messages_{status}",
                    target,
                    after={"count": len(ids)},
                    metadata={"message_ids": ids},
                )
            )
