"""Named errors of the service layer; the API and CLI map them to HTTP codes and exit codes."""


class ChatAdminError(Exception):
    """Base of every error the product raises on purpose."""

    code = "error"


class NotFound(ChatAdminError):
    """The object does not exist, or belongs to another org."""

    code = "not_found"


class Conflict(ChatAdminError):
    """The object already exists or was changed by someone else."""

    code = "conflict"


class InvalidTransition(Conflict):
    """A status change that the state machine does not allow."""

    code = "invalid_transition"


class TooLarge(ChatAdminError):
    """A write past a configured size limit."""

    code = "too_large"


class Invalid(ChatAdminError):
    """Input that is well-formed but not acceptable."""

    code = "invalid"


class Unavailable(ChatAdminError):
    """A dependency (MongoDB, Redis) cannot be reached."""

    code = "unavailable"
