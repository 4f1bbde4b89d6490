"""The HTTP protocol `runserver` serves with: uvicorn's h11 protocol plus a deadline for a
request's headers, so a client that sends them a byte at a time (slowloris) is cut off instead
of holding a connection for as long as it likes. uvicorn has no such timeout of its own. A
request h11 cannot parse gets a JSON 400 as elsewhere, not uvicorn's plain-text one.

Each worker that loads this module prints every thread's stack to its log on SIGUSR1 (what a
worker that stopped answering is doing)."""

from __future__ import annotations

import asyncio
import faulthandler
import functools
import json
import signal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol as _H11Protocol

from chatadmin.settings import Settings

faulthandler.register(signal.SIGUSR1, all_threads=True)


@functools.cache
def header_timeout() -> float:
    """`CHATADMIN_HEADER_TIMEOUT_S`, read once per worker process."""
    return Settings().chatadmin_header_timeout_s


class H11Protocol(_H11Protocol):
    """h11 with a header deadline from the connection's start and after each response."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the request's headers are all in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot parse gets the API's JSON error shape, like every other 4xx."""
        body = json.dumps(
            {"error": {"code": "bad_request", "message": f"malformed HTTP request: {msg}",
                       "details": []}}
        ).encode()  # fmt: skip
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(header_timeout(), self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
