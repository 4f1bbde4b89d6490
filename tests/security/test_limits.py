"""Bodies past their limit are refused before anything reads them; proxy headers are believed
only from trusted proxies; every response carries the security headers."""

from __future__ import annotations

import httpx
import pytest

from chatadmin.app import create_app
from chatadmin.middleware import DRAIN_MAX_BYTES, body_limit

MB = 1024 * 1024


def streamed(total: int, counter: list[int], chunk: int = 64 * 1024):
    """A body of `total` bytes sent without Content-Length; `counter` says how much was read."""

    async def gen():
        sent = 0
        while sent < total:
            counter[0] += chunk
            sent += chunk
            yield b"a" * chunk

    return gen()


@pytest.mark.parametrize("path", ["/admin/login", "/admin/threads/create", "/api/v1/ingest"])
async def test_a_declared_oversized_body_is_refused_unread(client, settings, path):
    """Before login, before the CSRF check, before the API key: nothing reads the body."""
    limit = body_limit(settings, path)
    read = [0]

    async def body():
        read[0] += 1
        yield b"x" * 1024

    response = await client.post(
        path,
        content=body(),
        headers={"content-length": str(limit + 1), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert read[0] <= 1  # at most the first chunk was pulled, never the body


@pytest.mark.parametrize("path", ["/admin/login", "/admin/threads/create", "/api/v1/ingest"])
async def test_an_undeclared_body_is_cut_off_at_the_limit(client, settings, make_key, path):
    limit = body_limit(settings, path)
    read = [0]
    kind = "application/json" if path.startswith("/api") else "application/x-www-form-urlencoded"
    response = await client.post(
        path,
        content=streamed(400 * MB, read),
        headers={"content-type": kind, **(await make_key("org-a", "ingest"))},
    )
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "too_large"
    # Past the limit the rest is read and thrown away, within the drain's bound (so a client
    # that writes before it reads gets the 413); never the 400 MB.
    assert read[0] <= limit + DRAIN_MAX_BYTES + 256 * 1024


async def test_the_login_form_limit_is_small_and_a_normal_login_fits(client, settings):
    assert body_limit(settings, "/admin/login") <= 64 * 1024
    assert body_limit(settings, "/admin/login") < body_limit(settings, "/admin/x")
    page = await client.get("/admin/login")
    assert page.status_code == 200
    response = await client.post(
        "/admin/login", data={"username": "nobody", "password": "x" * 1000}
    )
    assert response.status_code != 413


async def test_a_bad_content_length_is_a_400(client):
    response = await client.post("/admin/login", content=b"a=b", headers={"content-length": "12x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


async def test_security_headers_on_pages_and_api(client):
    for path in ("/", "/admin/login", "/api/v1/threads", "/healthz"):
        response = await client.get(path)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"


async def _seen_ip(app, client_ip: str, forwarded: str) -> str:
    seen = {}

    async def probe(scope, receive, send):
        seen["client"] = scope["client"][0]
        seen["scheme"] = scope["scheme"]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    from chatadmin.middleware import ProxyHeadersMiddleware

    mw = ProxyHeadersMiddleware(probe, app.state.settings)
    transport = httpx.ASGITransport(app=mw, client=(client_ip, 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        await http.get("/", headers={"x-forwarded-for": forwarded, "x-forwarded-proto": "https"})
    return seen["client"], seen["scheme"]


async def test_forwarded_headers_are_ignored_by_default(app):
    assert app.state.settings.trusted_proxies() == []
    assert await _seen_ip(app, "127.0.0.1", "6.6.6.6") == ("127.0.0.1", "http")


async def test_forwarded_headers_from_a_trusted_proxy(settings, database):
    trusting = settings.model_copy(update={"chatadmin_trusted_proxies": "10.0.0.0/8, 127.0.0.1"})
    app = create_app(trusting, database=database)
    # The client is the nearest hop that is not a trusted proxy; a spoofed first hop is ignored.
    assert await _seen_ip(app, "10.1.2.3", "6.6.6.6, 8.8.4.4, 10.9.9.9") == ("8.8.4.4", "https")
    # From an untrusted peer nothing is believed.
    assert await _seen_ip(app, "192.0.2.7", "8.8.4.4") == ("192.0.2.7", "http")


async def test_a_trusted_proxies_typo_is_refused(settings):
    from chatadmin.settings import ConfigError

    bad = settings.model_copy(update={"chatadmin_trusted_proxies": "10.0.0.0/8, proxy"})
    with pytest.raises(ConfigError, match="proxy"):
        bad.trusted_proxies()
