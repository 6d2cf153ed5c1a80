"""Exceptions of the SDK: one class per error family of the API's error envelope.

Every answer of the API with a status of 400 or more becomes an `APIStatusError`
subclass that carries the envelope's four fields as attributes of the same names:
`httpError`, `code`, `message` and `error` (the field-level messages).
"""

from __future__ import annotations

from typing import Any

import httpx


class VsenseError(Exception):
    """Base of every exception the SDK raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(VsenseError):
    """The server could not be reached (refused connection, DNS, TLS, reset)."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """The server did not answer in time."""


class MissingCredentialsError(VsenseError):
    """The client has no token and no way to get one (no email and password)."""


class WebhookVerificationError(VsenseError):
    """A webhook call's signature headers are missing, stale or do not match."""


class ImageCaptureError(VsenseError):
    """The device did not deliver a requested snapshot (failed, timed out or expired)."""


def _application_code(status: int) -> int:
    # The API's codes are the status with its first digit in the thousands: 404 -> 4004,
    # 413 -> 4013, 503 -> 5003. Used when an answer is not in the envelope (a proxy's page).
    return (status // 100) * 1000 + status % 100


class APIStatusError(VsenseError):
    """The API answered with an error status; the envelope's fields are attributes."""

    status_code: int

    def __init__(self, response: httpx.Response, body: Any) -> None:
        envelope = body if isinstance(body, dict) else {}
        status = response.status_code
        message = envelope.get("message")
        if not isinstance(message, str) or not message:
            text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
            message = f"HTTP {status} {response.reason_phrase}" + (f": {text}" if text else "")
        super().__init__(message)
        self.response = response
        self.body = body
        self.status_code = status
        http_error = envelope.get("httpError")
        code = envelope.get("code")
        error = envelope.get("error")
        self.httpError: int = http_error if isinstance(http_error, int) else status
        self.code: int = code if isinstance(code, int) else _application_code(status)
        self.error: list[Any] = error if isinstance(error, list) else []
        self.retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.httpError}, code {self.code})"


class BadRequestError(APIStatusError):
    """400: malformed request, bad JSON or a bad parameter value."""


class AuthenticationError(APIStatusError):
    """401: missing, malformed, expired or revoked token; wrong email or password."""


class PermissionDeniedError(APIStatusError):
    """403: authenticated but not allowed (role, scope, group), or an expired image link."""


class NotFoundError(APIStatusError):
    """404: no such resource, or one the caller may not see."""


class MethodNotAllowedError(APIStatusError):
    """405: the method is not supported on this path."""


class ConflictError(APIStatusError):
    """409: a duplicate name, or a state that forbids the change (an offline device)."""


class PayloadTooLargeError(APIStatusError):
    """413: the request body is too large."""


class UnprocessableEntityError(APIStatusError):
    """422: a well-formed but invalid body; `error` names each field."""


class RateLimitError(APIStatusError):
    """429: rate limited; `retry_after` says how many seconds to wait."""


class InternalServerError(APIStatusError):
    """5xx: the server failed."""


class ServiceUnavailableError(InternalServerError):
    """503: a dependency of the server (database, broker) is down."""


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def status_error(response: httpx.Response, retry_after: float | None = None) -> APIStatusError:
    """The exception for an error answer, built from its envelope."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    status = response.status_code
    error_class = STATUS_ERRORS.get(status)
    if error_class is None:
        error_class = InternalServerError if status >= 500 else APIStatusError
    error = error_class(response, body)
    error.retry_after = retry_after
    return error
