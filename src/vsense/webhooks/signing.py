"""Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

Signing goes through the reference library (`standardwebhooks`) so that what receivers
verify with it is, by construction, what we send. Each attempt signs
`{id}.{timestamp}.{body}` with HMAC-SHA256 keyed by the base64-decoded part of the
webhook's `whsec_` secret; during a rotation every listed secret signs, the current
one first, and receivers accept the message if any signature matches.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from secrets import token_bytes

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64 random bytes.


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_BYTES)).decode("ascii")


@functools.lru_cache(maxsize=4096)
def _webhook(secret: str) -> Webhook:
    # Building a `Webhook` base64-decodes the secret; one per secret keeps it off the
    # per-attempt path. Secrets are few (one or two per endpoint), so the cache is small.
    return Webhook(secret)


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,<base64 HMAC>` per secret, space-separated.

    `secrets` lists the current secret first, then any previous ones still valid during
    a rotation. `body` must be the exact bytes sent (UTF-8 JSON; empty for GET).
    """
    if not secrets:
        raise ValueError("at least one secret is needed to sign a webhook")
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    data = body.decode("utf-8")
    return " ".join(
        _webhook(secret).sign(msg_id=msg_id, timestamp=moment, data=data) for secret in secrets
    )


def signed_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt.

    `msg_id` stays the same on every retry of a delivery (receivers deduplicate on it);
    `timestamp` is the UNIX time of this attempt.
    """
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }
