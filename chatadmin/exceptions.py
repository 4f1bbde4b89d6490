"""Named errors of the service layer; the API and CLI map them to HTTP codes and exit codes."""


class ChatAdminError(Exception):
    """Base of every error the product raises on purpose; `details` say which field and why."""

    code = "error"

    def __init__(self, message: str = "", details: list | None = None, code: str | None = None):
        super().__init__(message)
        self.details = details or []
        if code:
            self.code = code


class BadRequest(ChatAdminError):
    """The request cannot be read (malformed JSON, a bad header)."""

    code = "bad_request"


class Unauthorized(ChatAdminError):
    """No credentials, or wrong ones."""

    code = "unauthorized"


class Forbidden(ChatAdminError):
    """Valid credentials without the right to do this."""

    code = "forbidden"


class UnsupportedMediaType(ChatAdminError):
    """The body is not JSON."""

    code = "unsupported_media_type"


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
    """A dependency (MongoDB, Redis) cannot be reached; `headers` may say when to retry."""

    code = "unavailable"

    def __init__(self, message: str = "", retry_after: int | None = None):
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)} if retry_after else None


class Busy(Unavailable):
    """Every write turn of this process is taken (the write gate); `headers` say when to retry."""

    code = "busy"


class RateLimited(ChatAdminError):
    """Too many requests in a window; `headers` say the limit, what is left and when it resets."""

    code = "rate_limited"

    def __init__(self, message: str, headers: dict[str, str]):
        super().__init__(message)
        self.headers = headers
