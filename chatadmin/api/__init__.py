"""The JSON API at `/api/v1`: routes built from the endpoint table, its OpenAPI document and a
docs page served from local assets."""

from __future__ import annotations

import functools

import swagger_ui_bundle
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from chatadmin.api import (
    analyses,
    audit,
    executions,
    imports,
    ingest,
    limits,
    messages,
    realtime,
    shares,
    threads,
    users,
)
from chatadmin.api import cache as cache_api
from chatadmin.api.auth import authorize
from chatadmin.api.openapi import build_openapi
from chatadmin.api.spec import Endpoint
from chatadmin.exceptions import Unavailable
from chatadmin.outage import RETRY_AFTER_S

ENDPOINTS: list[Endpoint] = [
    *ingest.ENDPOINTS,
    *imports.ENDPOINTS,
    *threads.ENDPOINTS,
    *messages.ENDPOINTS,
    *shares.ENDPOINTS,
    *analyses.ENDPOINTS,
    *executions.ENDPOINTS,
    *cache_api.ENDPOINTS,
    *users.ENDPOINTS,
    *realtime.ENDPOINTS,
    *audit.ENDPOINTS,
]

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>chatadmin API</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/swagger-ui-standalone-preset.js"></script>
<script src="docs/init.js"></script></body></html>"""
DOCS_INIT = """window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout", validatorUrl: null});"""


@functools.cache
def openapi_document() -> dict:
    return build_openapi(ENDPOINTS)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document())


async def docs(request: Request) -> Response:
    return HTMLResponse(DOCS_PAGE)


async def docs_init(request: Request) -> Response:
    return Response(DOCS_INIT, media_type="application/javascript")


def _dispatch(methods: dict[str, Endpoint]):
    """One route's handler: the endpoint of the method, behind the scope it declares."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        ep = methods[method]
        if ep.scope is None:
            return await ep.handler(request)
        outage = request.app.state.outage
        if outage.down and not ep.spools:  # no 5 s server-selection wait per request
            raise Unavailable("the database is not reachable; retry later", RETRY_AFTER_S)
        await authorize(request, ep.scope)  # sets request.state.api_key
        await limits.count_request(request)
        response = await ep.handler(request)
        response.headers.update(limits.headers(request))
        return response

    return endpoint


def routes() -> list[BaseRoute]:
    """Every API route, to mount at `/api/v1`."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for ep in ENDPOINTS:
        by_path.setdefault(ep.path, {})[ep.method] = ep
    # One route per path, so a wrong method gets a 405 whose Allow header lists every method.
    out: list[BaseRoute] = [
        Route(path, _dispatch(methods), methods=list(methods)) for path, methods in by_path.items()
    ]
    out += [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs/init.js", docs_init, methods=["GET"]),
        Mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path)),
    ]
    return out
