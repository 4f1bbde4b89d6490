"""`/messages/{id}/feedback`: a user's verdict on a message."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api.auth import record
from chatadmin.api.http import path_id, read_json, respond
from chatadmin.api.spec import Endpoint
from chatadmin.models import Message
from chatadmin.models.message import FeedbackIn, MessageOut
from chatadmin.services import messages


async def set_feedback(request: Request) -> Response:
    key = request.state.api_key
    message_id = path_id(request, "message_id")
    body = await read_json(request, FeedbackIn)
    message = await messages.set_feedback(
        key.org_id, message_id, is_helpful=body.is_helpful, rating=body.rating, comment=body.comment
    )
    await record(request, "feedback_set", Message, message_id, after=body.model_dump(mode="json"))
    return respond(MessageOut.model_validate(message))


ENDPOINTS = [
    Endpoint(
        "POST",
        "/messages/{message_id}/feedback",
        set_feedback,
        "Set a message's feedback",
        "messages",
        scope="ingest",
        body=FeedbackIn,
        response=MessageOut,
        errors=(401, 403, 404, 415, 422),
    ),
]
