"""The conversation page: a thread's transcript as a chat, with every block type rendered safely,
the analyses, executions, timings and feedback of each message, notes, and exports.

Pages are read by seq ranges on the (org_id, thread_id, seq) index, so a thread of 10,000
messages costs the same per page as a thread of ten.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette_admin import CustomView
from starlette_admin.routing import route

from chatadmin.admin import roles, transcript
from chatadmin.admin.auth import audit_admin
from chatadmin.clock import ms_datetime
from chatadmin.db import read_ahead
from chatadmin.exceptions import ChatAdminError
from chatadmin.models import Analysis, Execution, Message, Thread, User
from chatadmin.models.blocks import StructuredDataBlock
from chatadmin.realtime import events, fanout
from chatadmin.realtime.guard import RealtimeDown
from chatadmin.services import audit, threads
from chatadmin.services import messages as messages_service

PAGE = 100


def table_of(block: StructuredDataBlock) -> dict | None:
    """Columns and rows for a structured-data block, when it is tabular."""
    data = block.data
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        rows = [r if isinstance(r, list) else [r] for r in data["rows"]]
        width = max((len(r) for r in rows), default=0)
        columns = list(block.columns) or [f"column {i + 1}" for i in range(width)]
        return {"columns": columns, "rows": rows}
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        columns = list(dict.fromkeys(k for r in data for k in r))
        return {"columns": columns, "rows": [[r.get(c) for c in columns] for r in data]}
    if isinstance(data, dict):
        return {"columns": ["key", "value"], "rows": [[k, v] for k, v in data.items()]}
    return None


class ConversationView(CustomView):
    """`/admin/conversations/{thread_id}`: not in the menu; linked from lists and details."""

    def __init__(self) -> None:
        super().__init__(menu_label="Conversation", path="/conversations", add_to_menu=False)

    async def _thread(self, request: Request, thread_id: str) -> Thread | list[Thread] | None:
        query: dict = {"thread_id": thread_id}
        org = request.query_params.get("org")
        if org:
            query["org_id"] = org
        scope = roles.scope_query(request)
        if scope and query.get("org_id", scope["org_id"]) != scope["org_id"]:
            return None  # another org's thread: as if it did not exist
        query.update(scope)
        found = await Thread.find(query).limit(20).to_list()
        if len(found) == 1:
            return found[0]
        return found or None

    def _render(self, request: Request, name: str, context: dict, status: int = 200) -> Response:
        return self._admin._template_response(request, name, context, status)

    @route("", name="conversations")
    async def index(self, request: Request) -> Response:
        return RedirectResponse(str(request.url_for("admin:list", key="threads")))

    @route("/by-pk/{pk}", name="conversation-by-pk")
    async def by_pk(self, request: Request) -> Response:
        thread = await Thread.find_one(
            {"_id": request.path_params["pk"], **roles.scope_query(request)}
        )
        return self._go(request, thread)

    @route("/by-message/{pk}", name="conversation-by-message")
    async def by_message(self, request: Request) -> Response:
        msg = await Message.find_one(
            {"_id": request.path_params["pk"], **roles.scope_query(request)}
        )
        if msg is None:
            return self._not_found(request)
        thread = await Thread.find_one({"org_id": msg.org_id, "thread_id": msg.thread_id})
        start = max(0, msg.seq - 10)
        return self._go(request, thread, f"&from={start}#m{msg.seq}")

    @route("/by-user/{pk}", name="conversation-user")
    async def by_user(self, request: Request) -> Response:
        user = await User.find_one({"_id": request.path_params["pk"], **roles.scope_query(request)})
        if user is None:
            return self._not_found(request)
        url = request.url_for("admin:list", key="threads").include_query_params(
            filter=f'user_id__eq="{user.user_id}" AND org_id__eq="{user.org_id}"'
        )
        return RedirectResponse(str(url), status_code=303)

    def _go(self, request: Request, thread: Thread | None, extra: str = "") -> Response:
        if thread is None:
            return self._not_found(request)
        url = request.url_for("admin:conversation", thread_id=thread.thread_id)
        return RedirectResponse(f"{url}?org={thread.org_id}{extra}", status_code=303)

    def _not_found(self, request: Request) -> Response:
        return self._render(request, "conversation_missing.html", {"title": "Not found"}, 404)

    @route("/{thread_id}", name="conversation")
    async def conversation(self, request: Request) -> Response:
        found = await self._thread(request, request.path_params["thread_id"])
        if found is None:
            return self._not_found(request)
        if isinstance(found, list):
            return self._render(
                request, "conversation_choose.html", {"title": "Choose an org", "threads": found}
            )
        thread = found
        try:
            start = min(max(0, int(request.query_params.get("from", "0"))), 2**62)
        except ValueError:
            start = 0
        settings = request.app.state.settings
        messages, cut = await self._page(thread, start, settings.chatadmin_page_text_chars)
        links = await self._links(thread, messages)
        user = await User.find_one({"org_id": thread.org_id, "user_id": thread.user_id})
        if user is not None and roles.is_masked(request):
            user = User.model_construct(**roles.mask_document(user.model_dump()))
        last_start = max(0, thread.next_seq - PAGE)
        return self._render(
            request,
            "conversation.html",
            {
                "title": thread.title,
                "thread": thread,
                "user": user,
                "messages": messages,
                "links": links,
                "start": start,
                "page": PAGE,
                "prev_start": max(0, start - PAGE) if start > 0 else None,
                "next_start": start + PAGE if start + PAGE < thread.next_seq else None,
                "last_start": last_start,
                "pretty": transcript.pretty,
                "table_of": table_of,
                "as_html": lambda text: transcript.as_html(
                    text, images=settings.chatadmin_markdown_images
                ),
                "cut": cut,
                "can_note": roles.can_annotate(request),
                "notes": [{**n, "at": ms_datetime(n.get("created_at_ms"))} for n in thread.notes],
                "org": thread.org_id,
                # Live only on the last range: new messages belong at its end.
                "live": start + PAGE >= thread.next_seq,
            },
        )

    @route("/{thread_id}/events", name="conversation-events")
    async def events(self, request: Request) -> Response:
        """The thread's live tail for the transcript page: the staff session authorises it
        (never an API key in the page), the org scope limits it, viewers get masked data."""
        found = await self._thread(request, request.path_params["thread_id"])
        if not isinstance(found, Thread):
            return JSONResponse({"error": {"code": "not_found", "message": "no such thread"}}, 404)
        realtime = request.app.state.realtime
        heartbeat_ms = int(request.app.state.settings.chatadmin_sse_heartbeat_s * 1000)
        resume = request.headers.get("last-event-id")
        try:
            missed, after = await events.open_tail(realtime, found.org_id, found.thread_id, resume)
        except RealtimeDown:
            body = {"error": {"code": "unavailable", "message": "Redis is not reachable"}}
            return JSONResponse(body, 503)
        masked = roles.is_masked(request)
        images = request.app.state.settings.chatadmin_markdown_images

        def present(data: dict) -> dict:
            data = roles.mask_document(data) if masked else data
            if isinstance(data.get("text"), str):  # the page's renderer, for the page's tail
                data = {**data, "html": str(transcript.as_html(data["text"], images=images))}
            return data

        stream = fanout.tail(
            realtime, found.org_id, found.thread_id, missed, after, heartbeat_ms,
            request.is_disconnected, present=present,
        )  # fmt: skip
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    async def _page(self, thread: Thread, start: int, limit: int) -> tuple[list[Message], set]:
        """A page of messages from `start`, each cut as it is read (the page stays small even
        when its messages are large); and the seqs that were cut."""
        query = {**messages_service.visible(thread.org_id, thread.thread_id)}
        if start:
            query["seq"] = {"$gte": start}
        shown, cut = [], set()
        async for message in Message.find(query).sort([("seq", 1)]).limit(PAGE):
            message, was_cut = transcript.clip(message, limit)
            shown.append(message)
            if was_cut:
                cut.add(message.seq)
        return shown, cut

    @route("/{thread_id}/messages/{seq:int}.txt", name="conversation-message")
    async def message_text(self, request: Request) -> Response:
        """One message in full, as plain text (the page cuts long blocks and links here)."""
        found = await self._thread(request, request.path_params["thread_id"])
        if not isinstance(found, Thread):
            return self._not_found(request)
        query = messages_service.visible(found.org_id, found.thread_id)
        message = await Message.find_one({**query, "seq": request.path_params["seq"]})
        if message is None:
            return self._not_found(request)
        return PlainTextResponse(
            transcript.full_text(message), headers={"Content-Disposition": "inline"}
        )

    async def _links(self, thread: Thread, messages: list[Message]) -> dict:
        """Admin pks of the analyses and executions the page links to, and execution facts."""
        analysis_ids = sorted({m.analysis_id for m in messages if m.analysis_id})
        execution_ids = sorted({m.execution_id for m in messages if m.execution_id})
        analyses = (
            await Analysis.find(Analysis.keyed(thread.org_id, analysis_ids)).to_list()
            if analysis_ids
            else []
        )
        runs = (
            await Execution.find(Execution.keyed(thread.org_id, execution_ids)).to_list()
            if execution_ids
            else []
        )
        return {
            "analyses": {a.analysis_id: a.id for a in analyses},
            "executions": {r.execution_id: r for r in runs},
        }

    @route("/{thread_id}/notes", methods=["POST"], name="conversation-note")
    async def add_note(self, request: Request) -> Response:
        found = await self._thread(request, request.path_params["thread_id"])
        if not isinstance(found, Thread):
            return self._not_found(request)
        if not roles.can_annotate(request):
            return self._render(
                request, "conversation_missing.html", {"title": "Forbidden", "forbidden": True}, 403
            )
        text = str((await request.form()).get("note", ""))
        user = roles.staff(request)
        try:
            await threads.add_note(found.org_id, found.thread_id, user.username, text)
        except ChatAdminError:
            pass  # an empty or overlong note is simply not added; the page shows the notes
        else:
            await audit_admin(
                request,
                "note_added",
                actor=user.username,
                org_id=found.org_id,
                resource=audit.resource(found),
                after={"note": text[:500]},
            )
        url = request.url_for("admin:conversation", thread_id=found.thread_id)
        return RedirectResponse(f"{url}?org={found.org_id}#notes", status_code=303)

    @route("/{thread_id}/export.{fmt}", name="conversation-export")
    async def export(self, request: Request) -> Response:
        found = await self._thread(request, request.path_params["thread_id"])
        fmt = request.path_params["fmt"]
        if not isinstance(found, Thread) or fmt not in ("json", "md"):
            return self._not_found(request)
        cursor = messages_service.all_messages(found.org_id, found.thread_id)
        masked = roles.is_masked(request)
        user = roles.staff(request)
        await audit_admin(
            request,
            "transcript_exported",
            actor=user.username,
            org_id=found.org_id,
            resource=audit.resource(found),
            metadata={"format": fmt},
        )
        name = f"thread-{found.thread_id}.{fmt}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        if fmt == "md":
            return StreamingResponse(  # read_ahead: a hang-up never cancels a PyMongo call
                read_ahead(transcript.markdown_export(found, cursor)),
                media_type="text/markdown; charset=utf-8",
                headers=headers,
            )

        async def stream():
            head = found.model_dump(mode="json", exclude={"notes"})
            if masked:
                head = roles.mask_document(head)
            yield '{"thread": ' + json.dumps(head, ensure_ascii=False) + ', "messages": ['
            first = True
            async for m in cursor:
                data = m.model_dump(mode="json", by_alias=False, exclude={"id"})
                if masked:
                    data = roles.mask_document(data)
                yield ("" if first else ",") + json.dumps(data, ensure_ascii=False)
                first = False
            yield "]}\n"

        return StreamingResponse(read_ahead(stream()), media_type="application/json",
                                 headers=headers)  # fmt: skip
