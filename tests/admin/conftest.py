"""Fixtures of the admin tests: cheap password hashes, an HTTP client of its own per staff
member (`browser`), logged-in staff of each role (`login_as`), and seeded data (`world`,
`block`)."""

from __future__ import annotations

import uuid

import httpx
import pytest
import pytest_asyncio
from argon2 import PasswordHasher

from chatadmin.seed import seed
from chatadmin.services import accounts
from tests.admin.pages import (
    PASSWORD,
    PORTS,
    UA,
    Staff,
    make_block_thread,
    try_login,
)


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    monkeypatch.setattr(
        accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest_asyncio.fixture(loop_scope="session")
async def browser(app):
    """`await browser(ip=...)`: a fresh client for the app, closed at the end of the test."""
    opened: list[httpx.AsyncClient] = []

    async def make(ip: str = "127.0.0.1", app_=None) -> Staff:
        transport = httpx.ASGITransport(app=app_ or app, client=(ip, next(PORTS)))
        http = httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"user-agent": UA}
        )
        opened.append(http)
        return Staff(http, ip=ip)

    yield make
    for http in opened:
        await http.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def login_as(browser):
    """`await login_as("viewer", org_id=None)`: a new admin user of that role, logged in."""

    async def make(role: str, org_id: str | None = None, ip: str = "127.0.0.1") -> Staff:
        username = f"{role}-{org_id or 'all'}-{uuid.uuid4().hex[:6]}"
        await accounts.create_admin_user(username, PASSWORD, role, org_id)
        staff = await browser(ip)
        staff.username = username
        response = await try_login(staff, username, PASSWORD)
        assert response.status_code == 303, response.text[:500]
        assert response.headers["location"] == "http://testserver/admin/"
        return staff

    return make


@pytest_asyncio.fixture(loop_scope="session")
async def block(app):
    """The seeded people (4 users in each of acme, globex, initech) and the every-block thread."""
    await seed(0)
    return await make_block_thread()


@pytest_asyncio.fixture(loop_scope="session")
async def world(app):
    """Seeded data (one thread per org: acme, globex, initech) plus the every-block thread."""
    await seed(3)
    return await make_block_thread()
