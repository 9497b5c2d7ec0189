"""Domain errors that services raise and the API maps to HTTP status codes.

Each is a ValueError, so callers that only care about "bad input" can catch
ValueError; the API's exception handler reads `status_code` (400 if absent).
"""


class DomainError(ValueError):
    """A rule of the service was broken; the message is safe to show to clients."""

    status_code = 400
    code = "invalid"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "too_large"


class LimitExceeded(DomainError):
    status_code = 429
    code = "limit_exceeded"
