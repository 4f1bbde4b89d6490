"""A recorder of the commands the app sends to MongoDB, registered before any client exists
(pymongo listeners apply to clients created after them); it records only while a test asks."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from pymongo import monitoring

FILTERED = {
    "find": "filter", "update": "updates", "delete": "deletes", "findAndModify": "query",
    "aggregate": "pipeline", "count": "query", "distinct": "query",
}  # fmt: skip


@dataclass
class Sent:
    command: str
    collection: str
    filters: list[dict]


@dataclass
class Recorder(monitoring.CommandListener):
    sent: list[Sent] = field(default_factory=list)
    on: bool = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.on or event.command_name not in FILTERED:
            return
        cmd = event.command
        where = cmd.get(FILTERED[event.command_name])
        if event.command_name in ("update", "delete"):
            filters = [op.get("q", {}) for op in where or []]
        elif event.command_name == "aggregate":
            filters = [s["$match"] for s in where or [] if "$match" in s][:1] or [{}]
        else:
            filters = [where or {}]
        self.sent.append(Sent(event.command_name, str(cmd[event.command_name]), filters))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass

    @contextlib.contextmanager
    def recording(self):
        self.sent.clear()
        self.on = True
        try:
            yield self.sent
        finally:
            self.on = False


RECORDER = Recorder()
monitoring.register(RECORDER)
