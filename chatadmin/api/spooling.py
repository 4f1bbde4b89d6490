"""The API's side of the durable spool: a write that cannot reach MongoDB is kept in the
spool (fsync'd) and answered 202 with `"spooled": true`; a full spool answers 503."""

from __future__ import annotations

from starlette.requests import Request

from chatadmin.exceptions import Unavailable
from chatadmin.outage import RETRY_AFTER_S
from chatadmin.spool import SpoolFull


def keep(request: Request, record: dict) -> None:
    """Write one record to this process's spool (durably) or refuse with 503."""
    spool = request.app.state.spool
    try:
        spool.append([record])
    except SpoolFull as exc:
        raise Unavailable(f"the database is not reachable and {exc}", RETRY_AFTER_S) from exc
