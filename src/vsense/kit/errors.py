"""Domain errors carry their HTTP status and application code; `app.py` renders them."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base of every error the API answers on purpose, in the spec's error envelope."""

    status_code = 500
    code = 5000
    default_message = "The server could not complete the request."
    # An error whose work must be kept (a revocation, say) asks the edge to commit.
    commit_session = False

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.errors = errors or []
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {
            "httpError": self.status_code,
            "code": self.code,
            "message": self.message,
            "error": self.errors,
        }


class BadRequest(AppError):
    status_code, code = 400, 4000
    default_message = "The request is malformed."


class Unauthorized(AppError):
    status_code, code = 401, 4001
    default_message = "A valid bearer token is required."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(AppError):
    status_code, code = 403, 4003
    default_message = "You are not allowed to do this."


class NotFound(AppError):
    status_code, code = 404, 4004
    default_message = "No such resource."


class MethodNotAllowed(AppError):
    status_code, code = 405, 4005
    default_message = "This method is not supported on this path."


class Conflict(AppError):
    status_code, code = 409, 4009
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(AppError):
    status_code, code = 413, 4013
    default_message = "The request body is too large."


class Unprocessable(AppError):
    status_code, code = 422, 4022
    default_message = "The request body is invalid."


class TooManyRequests(AppError):
    status_code, code = 429, 4029
    default_message = "Too many requests; retry later."

    def __init__(self, message: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(max(1, retry_after))})
        super().__init__(message, **kwargs)


class ServiceUnavailable(AppError):
    status_code, code = 503, 5003
    default_message = "A dependency of the server is unavailable."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(max(1, retry_after))})
        super().__init__(message, **kwargs)


DATABASE_RETRY_AFTER = 2  # seconds a client is asked to wait when the database is away


def database_unavailable() -> ServiceUnavailable:
    """The answer while the database cannot be reached: 503, retry shortly."""
    return ServiceUnavailable(
        f"The database is unavailable; retry in {DATABASE_RETRY_AFTER} s.",
        retry_after=DATABASE_RETRY_AFTER,
    )


def field_error(field: str, message: str) -> dict[str, Any]:
    """One entry of the envelope's `error` list."""
    return {"field": field, "message": message}


STATUS_ERRORS: dict[int, type[AppError]] = {
    cls.status_code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        Unprocessable,
        TooManyRequests,
        ServiceUnavailable,
    )
}
