"""A new API key's secret, shown once in the body of the answer to the form that created it.

starlette-admin answers a create form with a redirect, and a flash message would carry the
secret in a cookie (signed, not encrypted). The view leaves the secret in the request's state
instead; this middleware turns that one redirect into a page that shows the secret, marked
`no-store`, with a link on to where the redirect was going.
"""

from __future__ import annotations

from markupsafe import escape
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATE_KEY = "new_api_key_secret"

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>API key created · chatadmin</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 4rem auto; padding: 0 1rem;
       color: #1d273b; }}
code {{ background: #f1f5f9; padding: 0 .25rem; border-radius: 4px; }}
#api-key-secret {{ display: block; padding: 1rem; font-size: 1.05rem; word-break: break-all;
                   user-select: all; }}
.warn {{ color: #b45309; }}
a.button {{ display: inline-block; margin-top: 1.5rem; padding: .5rem 1rem; background: #066fd1;
            color: #fff; border-radius: 6px; text-decoration: none; }}
</style></head><body>
<h1>API key created</h1>
<p>Key <strong>{key_id}</strong> for org <strong>{org_id}</strong>, scopes: {scopes}.</p>
<p class="warn">Copy the secret now. It is not stored and will not be shown again.</p>
<code id="api-key-secret">{secret}</code>
<p>Send it as <code>Authorization: Bearer &lt;secret&gt;</code>.</p>
<a class="button" href="{next}">Continue</a>
</body></html>
"""


class ShowSecretOnce:
    """Replace the redirect after an API key's creation by the page that shows its secret."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def maybe_replace(msg: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the redirect's own body
            created = scope.get("state", {}).get(STATE_KEY)
            if msg["type"] == "http.response.start" and created and msg["status"] == 303:
                location = dict(msg.get("headers", [])).get(b"location", b"").decode("latin-1")
                body = PAGE.format(
                    key_id=escape(created["key_id"]),
                    org_id=escape(created["org_id"]),
                    scopes=escape(", ".join(created["scopes"])),
                    secret=escape(created["secret"]),
                    next=escape(location or "/admin/"),
                ).encode()
                cookies = [(k, v) for k, v in msg.get("headers", []) if k == b"set-cookie"]
                headers = [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    *cookies,
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                replaced = True
                return
            await send(msg)

        await self.app(scope, receive, maybe_replace)
