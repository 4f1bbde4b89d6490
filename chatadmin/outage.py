"""Whether MongoDB is reachable, as the app last saw it: after a failure the doors stop trying
for a moment (writes go straight to the spool, reads answer 503) instead of paying the server
selection timeout on every request; the spool's replay loop probes and clears it."""

from __future__ import annotations

import time

from pymongo.errors import ConnectionFailure, ExecutionTimeout, ServerSelectionTimeoutError

# What "the database is unreachable" looks like (AutoReconnect and NetworkTimeout are
# ConnectionFailures; ExecutionTimeout is an operation's time limit run out); anything else the
# database says is an answer, not an outage.
DATABASE_DOWN = (ConnectionFailure, ServerSelectionTimeoutError, ExecutionTimeout)
HOLD_S = 2.0
RETRY_AFTER_S = 5


class Outage:
    """The last MongoDB failure this process saw."""

    def __init__(self) -> None:
        self.down_until = 0.0

    @property
    def down(self) -> bool:
        return time.monotonic() < self.down_until

    def failed(self) -> None:
        self.down_until = time.monotonic() + HOLD_S

    def recovered(self) -> None:
        self.down_until = 0.0
