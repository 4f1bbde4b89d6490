"""Login throttling holds under parallel tries; sessions end at logout and when an admin
changes the user's password or access; "Remember me" lifts the idle limit only."""

from __future__ import annotations

import asyncio
import time

import pytest

from chatadmin.admin import auth
from chatadmin.admin.throttle import MAX_FAILURES
from chatadmin.models import AdminUser, AuditLog
from chatadmin.realtime.store import InProcessStore
from chatadmin.services import accounts
from tests.admin.pages import (
    IPS,
    PASSWORD,
    SESSION_COOKIE,
    form_fields,
    hidden_csrf,
    is_login_redirect,
    session_data,
    try_login,
)


@pytest.fixture
def counted_checks(monkeypatch):
    """How many passwords were actually checked."""
    calls = [0]
    real = accounts.authenticate_admin

    async def counting(username, password):
        calls[0] += 1
        await asyncio.sleep(0.01)  # a password check takes time: let the others pile up
        return await real(username, password)

    monkeypatch.setattr(accounts, "authenticate_admin", counting)
    return calls


async def _parallel_logins(browser, username: str, ip: str, n: int = 40) -> list:
    staffs = [await browser(ip) for _ in range(n)]
    tokens = []
    for staff in staffs:
        tokens.append(hidden_csrf((await staff.get("/admin/login")).text))
    return await asyncio.gather(
        *[
            s.post("/admin/login", data={"username": username, "password": "wrong", "csrftoken": t})
            for s, t in zip(staffs, tokens, strict=True)
        ]
    )


async def test_parallel_logins_check_at_most_five_passwords(app, browser, counted_checks):
    username = f"race-{time.time_ns()}"
    await accounts.create_admin_user(username, PASSWORD, "admin")
    answers = await _parallel_logins(browser, username, next(IPS))
    assert all(a.status_code == 400 for a in answers)
    assert counted_checks[0] <= MAX_FAILURES
    assert sum("Too many failed logins" in a.text for a in answers) >= 40 - MAX_FAILURES
    # the refusals are audited once a minute per address, not 35 times
    refused = await AuditLog.find({"action": "login_refused", "actor_id": username}).count()
    assert refused == 1


async def test_parallel_logins_without_redis(app, browser, counted_checks, monkeypatch):
    throttle = app.state.admin_throttle
    monkeypatch.setattr(throttle, "store", InProcessStore())
    username = f"race-local-{time.time_ns()}"
    await accounts.create_admin_user(username, PASSWORD, "admin")
    await _parallel_logins(browser, username, next(IPS))
    assert counted_checks[0] <= MAX_FAILURES


async def test_a_success_gives_the_address_its_try_back(app, browser):
    ip = next(IPS)
    username = f"ok-{time.time_ns()}"
    await accounts.create_admin_user(username, PASSWORD, "admin")
    for _ in range(MAX_FAILURES + 2):  # more good logins than the limit, from one address
        assert (await try_login(await browser(ip), username, PASSWORD)).status_code == 303


async def test_a_copied_cookie_dies_at_logout(app, login_as, browser):
    staff = await login_as("admin")
    cookie = staff.http.cookies.get(SESSION_COOKIE)
    thief = await browser("192.0.2.50")
    thief.http.cookies.set(SESSION_COOKIE, cookie)
    assert (await thief.get("/admin/")).status_code == 200
    page = await staff.get("/admin/")
    assert page.status_code == 200
    await staff.post("/admin/logout", data={"csrftoken": staff.csrf})
    assert is_login_redirect(await thief.get("/admin/"))
    assert is_login_redirect(await staff.get("/admin/"))


async def test_a_new_password_ends_the_users_sessions(app, login_as):
    victim = await login_as("support")
    admin = await login_as("admin")
    user = await AdminUser.find_one({"username": victim.username})
    url = f"/admin/admin-users/edit?pk={user.id}"
    form = await admin.get(url)
    assert form.status_code == 200
    fields = [(k, v) for k, v in form_fields(form.text) if k not in ("csrftoken", "password")]
    changed = await admin.form_post(url, [*fields, ("password", "a brand new long password")])
    assert changed.status_code == 303, changed.text[:500]
    assert is_login_redirect(await victim.get("/admin/"))
    assert (await admin.get("/admin/")).status_code == 200  # the admin's own session lives
    # an edit that changes nothing of the user's access keeps their sessions
    again = await login_as("viewer")
    other = await AdminUser.find_one({"username": again.username})
    url = f"/admin/admin-users/edit?pk={other.id}"
    fields = [(k, v) for k, v in form_fields((await admin.get(url)).text) if k != "csrftoken"]
    assert (await admin.form_post(url, fields)).status_code == 303
    assert (await again.get("/admin/")).status_code == 200


async def test_remember_me_lifts_the_idle_limit_but_not_the_absolute_one(app, browser, monkeypatch):
    username = f"remember-{time.time_ns()}"
    await accounts.create_admin_user(username, PASSWORD, "admin")
    plain, remembered = await browser(), await browser()
    await try_login(plain, username, PASSWORD)
    page = await remembered.get("/admin/login")
    ok = await remembered.post(
        "/admin/login",
        data={
            "username": username,
            "password": PASSWORD,
            "remember_me": "on",
            "csrftoken": hidden_csrf(page.text),
        },
    )
    assert session_data(ok)["remember"] is True
    start = time.time()
    monkeypatch.setattr(auth.time, "time", lambda: start + auth.IDLE_SECONDS + 60)
    assert is_login_redirect(await plain.get("/admin/"))
    assert (await remembered.get("/admin/")).status_code == 200
    monkeypatch.setattr(auth.time, "time", lambda: start + auth.ABSOLUTE_SECONDS + 60)
    assert is_login_redirect(await remembered.get("/admin/"))
