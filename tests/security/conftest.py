"""The admin's fixtures (a staff browser, a logged-in user of a role, cheap password hashes)."""

from tests.admin.conftest import block, browser, cheap_hashes, login_as, world  # noqa: F401
