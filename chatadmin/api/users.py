"""`/users`: create or update users, read them, and their question history."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api.auth import record
from chatadmin.api.http import path_id, read_json, read_query, respond
from chatadmin.api.spec import Endpoint
from chatadmin.api.threads import message_out
from chatadmin.models.message import MessageOut
from chatadmin.models.user import QuestionsQuery, UserIn, UserOut
from chatadmin.services import history, users


async def put_user(request: Request) -> Response:
    key = request.state.api_key
    user_id = path_id(request, "user_id")
    body = await read_json(request, UserIn)
    fields = body.model_dump(exclude_unset=True)
    before = await users.User.find_one({"org_id": key.org_id, "user_id": user_id})
    user, created = await users.upsert_user(key.org_id, user_id, **fields)
    out = UserOut.model_validate(user).model_dump(mode="json")
    await record(
        request,
        "user_created" if created else "user_updated",
        users.User,
        user_id,
        before=UserOut.model_validate(before).model_dump(mode="json") if before else None,
        after=out,
    )
    return respond(out, 201 if created else 200)


async def get_user(request: Request) -> Response:
    key = request.state.api_key
    user = await users.get_user(key.org_id, path_id(request, "user_id"))
    return respond(UserOut.model_validate(user))


async def questions(request: Request) -> Response:
    key = request.state.api_key
    user_id = path_id(request, "user_id")
    q = read_query(request, QuestionsQuery)
    page = await history.question_history(
        key.org_id,
        user_id=user_id,
        thread_id=q.thread_id,
        query_type=q.query_type,
        limit=q.limit,
        cursor=q.cursor,
    )
    return respond({"items": [message_out(m) for m in page.items], "next_cursor": page.next_cursor})


ENDPOINTS = [
    Endpoint(
        "PUT",
        "/users/{user_id}",
        put_user,
        "Create or update a user",
        "users",
        scope="ingest",
        body=UserIn,
        response=UserOut,
        errors=(409,),
        also=(201,),
    ),
    Endpoint(
        "GET",
        "/users/{user_id}",
        get_user,
        "A user",
        "users",
        response=UserOut,
        errors=(401, 403, 404),
    ),
    Endpoint(
        "GET",
        "/users/{user_id}/questions",
        questions,
        "A user's questions, newest first",
        "users",
        query=QuestionsQuery,
        response=MessageOut,
        many=True,
        errors=(401, 403, 422),
    ),
]
