"""The admin's fixtures, for the contracts that drive the admin too."""

from tests.admin.conftest import browser, cheap_hashes, login_as  # noqa: F401
