"""Whether MongoDB is reachable, as the app last saw it: after a failure the doors stop trying
for a moment (writes go straight to the spool, reads answer 503) instead of paying the server
selection timeout on every request; the spool's replay loop probes and clears it."""

from __future__ import annotations

import logging
import time

from pymongo.errors import ConnectionFailure, ExecutionTimeout, ServerSelectionTimeoutError

# What "the database is unreachable" looks like (AutoReconnect and NetworkTimeout are
# ConnectionFailures; ExecutionTimeout is an operation's time limit run out); anything else the
# database says is an answer, not an outage.
DATABASE_DOWN = (ConnectionFailure, ServerSelectionTimeoutError, ExecutionTimeout)
HOLD_S = 2.0
RETRY_AFTER_S = 5
WARN_EVERY_S = 60.0

log = logging.getLogger("chatadmin.outage")


class Outage:
    """The last MongoDB failure this process saw."""

    def __init__(self) -> None:
        self.down_until = 0.0
        self.warned_at = -WARN_EVERY_S

    @property
    def down(self) -> bool:
        return time.monotonic() < self.down_until

    def failed(self, cause: BaseException | None = None) -> None:
        """A door met `cause`: hold off for a moment, and say why (at most once a minute)."""
        now = time.monotonic()
        if cause is not None and now - self.warned_at >= WARN_EVERY_S:
            self.warned_at = now
            log.warning(
                "MongoDB unreachable (%s: %s): writes go to the spool, reads answer 503",
                type(cause).__name__,
                str(cause)[:300],
            )
        self.down_until = now + HOLD_S

    def recovered(self) -> None:
        self.down_until = 0.0
