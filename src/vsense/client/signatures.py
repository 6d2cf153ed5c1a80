"""Standard Webhooks signatures: check that a webhook call comes from the platform.

The platform signs every call with the headers `webhook-id`, `webhook-timestamp` and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with
the base64-decoded part of the `whsec_` secret; several signatures are space-separated
during a secret rotation). Only the standard library is needed to check them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from vsense.client.errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"
# How far a call's timestamp may be from the receiver's clock (replay protection).
DEFAULT_TOLERANCE_S = 300


def _secret_key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("The webhook secret is not valid base64.") from exc
    if not key:
        raise WebhookVerificationError("The webhook secret is empty.")
    return key


def _body_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str | bytes, *, webhook_id: str, timestamp: int, body: bytes | str) -> str:
    """The `webhook-signature` value (`v1,<base64>`) of one call."""
    signed = f"{webhook_id}.{timestamp}.".encode() + _body_bytes(body)
    digest = hmac.new(_secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"The `{name}` header is missing.")


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | bytes | Sequence[str | bytes],
    *,
    tolerance: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """Check a webhook call and return its parsed JSON body (`None` for an empty body).

    `body` must be the raw bytes received, before any JSON parsing. `secret` may be a
    list, to accept both secrets during a rotation on the receiver's side. Raises
    `WebhookVerificationError` when a header is missing, the timestamp is more than
    `tolerance` seconds from `now`, or no signature matches.
    """
    webhook_id = _header(headers, "webhook-id")
    timestamp_text = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise WebhookVerificationError("The `webhook-timestamp` header is not a number.") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"The call's timestamp is {current - timestamp:+.0f} s from this clock "
            f"(at most {tolerance:.0f} s accepted)."
        )
    secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
    raw = _body_bytes(body)
    expected = [
        sign(key, webhook_id=webhook_id, timestamp=timestamp, body=raw).encode() for key in secrets
    ]
    for candidate in signatures.split():
        if not candidate.startswith("v1,"):
            continue
        if any(hmac.compare_digest(candidate.encode(), value) for value in expected):
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return raw.decode(errors="replace")
    raise WebhookVerificationError("No signature matches the webhook secret.")
