"""`/admin/realtime`: what Redis holds right now: the sessions, who is present, the live-tail
rooms and their listeners, and the depth of each conversation's event stream (org scope
honoured)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette_admin import CustomView
from starlette_admin.routing import route

from chatadmin.admin import roles
from chatadmin.realtime import keys
from chatadmin.realtime.guard import Realtime, RealtimeDown

MAX_ROWS = 200


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _tag(key: str) -> tuple[str, str]:
    """The org and the id inside a key's hash tag (`...{org:id}...`)."""
    inner = key[key.index("{") + 1 : key.index("}")]
    org, _, rest = inner.partition(":")
    return org, rest


async def snapshot(rt: Realtime, org: str | None) -> dict:
    """Presence, rooms and streams, at most `MAX_ROWS` of each, for one org or all."""
    tag = f"{{{org}:*" if org else "{*"

    async def scan(client, kind: str) -> list[str]:
        found = []
        async for key in client.scan_iter(match=rt.key(f"{kind}:{tag}"), count=500):
            found.append(_text(key))
            if len(found) >= MAX_ROWS:
                break
        return sorted(found)

    async def read(client):
        sessions = []
        async for raw in client.scan_iter(match=rt.key("session:{*"), count=500):
            key = _text(raw)
            fields = {_text(k): _text(v) for k, v in (await client.hgetall(key)).items()}
            if not fields or (org and fields.get("organizationId") != org):
                continue
            sessions.append({"session": _tag(key)[0], "org": fields.get("organizationId"),
                             "user": fields.get("userId"), "status": fields.get("presenceStatus"),
                             "last_activity_ms": int(fields.get("lastActivity") or 0)})  # fmt: skip
            if len(sessions) >= MAX_ROWS:
                break
        presence = []
        for key in await scan(client, "presence"):
            value = await client.get(key)
            if value is None:
                continue
            session, status, seen = _text(value).split("|", 2)
            org_id, user = _tag(key)
            presence.append({"org": org_id, "user": user, "status": status,
                             "session": session, "last_seen_ms": int(seen)})  # fmt: skip
        rooms = []
        for key in await scan(client, "room"):
            org_id, thread = _tag(key)
            participants = await client.smembers(rt.key(keys.participants(org_id, thread)))
            rooms.append({"org": org_id, "thread": thread, "listeners": await client.scard(key),
                          "participants": sorted(_text(p) for p in participants)})  # fmt: skip
        queues = []
        for key in await scan(client, "queue"):
            org_id, thread = _tag(key)
            depth = len(await client.xrange(key)) if rt.in_process else await client.xlen(key)
            queues.append({"org": org_id, "thread": thread, "events": depth})
        return {"sessions": sessions, "presence": presence, "rooms": rooms, "queues": queues}

    return await rt.run(read)


class RealtimeView(CustomView):
    """The Realtime page (in the Analytics menu group)."""

    def __init__(self) -> None:
        super().__init__(
            menu_label="Realtime", icon="fa fa-tower-broadcast", path="/realtime", add_to_menu=True
        )

    def is_accessible(self, request: Request) -> bool:
        return roles.staff(request) is not None

    @route("", name="realtime")
    async def index(self, request: Request) -> Response:
        org = roles.org_scope(request)
        try:
            data, error = await snapshot(request.app.state.realtime, org), None
        except RealtimeDown as exc:
            data, error = {"sessions": [], "presence": [], "rooms": [], "queues": []}, str(exc)
        return self._admin._template_response(
            request,
            "realtime.html",
            {"title": "Realtime", "scope": org, "error": error, "limit": MAX_ROWS, **data},
        )
