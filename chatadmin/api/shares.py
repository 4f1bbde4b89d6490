"""`/share/{share_id}`: the public read of a shared snapshot (no key) and its revocation."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api.auth import record
from chatadmin.api.http import no_content, respond
from chatadmin.api.spec import Endpoint
from chatadmin.exceptions import NotFound
from chatadmin.models import SharedThread
from chatadmin.models.share import SharedThreadOut
from chatadmin.services import shares


def _share_id(request: Request) -> str:
    share_id = request.path_params["share_id"]
    if not (16 <= len(share_id) <= 128) or not share_id.replace("-", "").replace("_", "").isalnum():
        raise NotFound("share not found")
    return share_id


async def get_share(request: Request) -> Response:
    share = await shares.get_share(_share_id(request))
    out = SharedThreadOut(
        share_id=share.share_id,
        thread=share.snapshot["thread"],
        messages=share.snapshot["messages"],
        created_at=share.created_at,
        expires_at=share.expires_at,
    )
    response = respond(out)
    response.headers["Cache-Control"] = "no-store"
    return response


async def revoke_share(request: Request) -> Response:
    key = request.state.api_key
    share_id = _share_id(request)
    await shares.revoke_share(key.org_id, share_id)
    await record(
        request,
        "share_revoked",
        SharedThread,
        share_id,
        before={"revoked": False},
        after={"revoked": True},
    )
    return no_content()


ENDPOINTS = [
    Endpoint(
        "GET",
        "/share/{share_id}",
        get_share,
        "Read a shared thread (no API key)",
        "shares",
        scope=None,
        response=SharedThreadOut,
        errors=(404,),
    ),
    Endpoint(
        "DELETE",
        "/share/{share_id}",
        revoke_share,
        "Revoke a share",
        "shares",
        scope="share",
        status=204,
        errors=(401, 403, 404),
    ),
]
