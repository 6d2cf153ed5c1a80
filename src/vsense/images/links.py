"""Signed image links: `/api/v1/images/<expiry>.<signature>/<request_id>_<kind>_image`.

The signature is an HMAC-SHA256 over the request id, the kind and the expiry, keyed
with a key derived from the server's secret key (so that a link signature can never
stand for an access token, or the reverse). A link needs no bearer token; anyone who
holds it may fetch the image until it expires. Checking one reads nothing from the
database and compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from vsense.kit.http import API_PREFIX

ImageKind = Literal["raw", "annotated"]
KINDS: tuple[ImageKind, ...] = ("raw", "annotated")
LINK_PREFIX = f"{API_PREFIX}/images"
_NAME = re.compile(r"([0-9a-fA-F-]{36})_(raw|annotated)_image")
_TOKEN = re.compile(r"(\d{1,12})\.([A-Za-z0-9_-]{43})")


def link_key(secret_key: str) -> bytes:
    """The key of image links, derived from the server's secret key."""
    return hmac.new(secret_key.encode(), b"vsense image links v1", hashlib.sha256).digest()


def _signature(key: bytes, request_id: uuid.UUID, kind: str, expires: int) -> str:
    mac = hmac.new(key, f"{request_id}:{kind}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def link_path(key: bytes, request_id: uuid.UUID, kind: ImageKind, expires_at: datetime) -> str:
    """The path of a signed link, valid until `expires_at` (whole seconds)."""
    expires = int(expires_at.timestamp())
    token = f"{expires}.{_signature(key, request_id, kind, expires)}"
    return f"{LINK_PREFIX}/{token}/{request_id}_{kind}_image"


def link_pair(key: bytes, base_url: str, request_id: uuid.UUID, expires_at: datetime) -> list[str]:
    """The raw and the annotated link, absolute, in that order (the seed's `data`)."""
    base = base_url.rstrip("/")
    return [base + link_path(key, request_id, kind, expires_at) for kind in KINDS]


@dataclass(frozen=True, slots=True)
class VerifiedLink:
    request_id: uuid.UUID
    kind: ImageKind
    expires_at: datetime


def verify(key: bytes, token: str, name: str, now: datetime) -> VerifiedLink | None:
    """The link's request and kind when its signature matches and it has not expired;
    None otherwise (the caller cannot tell which, and needs not)."""
    token_match = _TOKEN.fullmatch(token)
    name_match = _NAME.fullmatch(name)
    if token_match is None or name_match is None:
        return None
    try:
        request_id = uuid.UUID(name_match[1])
    except ValueError:
        return None
    kind: ImageKind = "raw" if name_match[2] == "raw" else "annotated"
    expires = int(token_match[1])
    expected = _signature(key, request_id, kind, expires)
    if not hmac.compare_digest(expected.encode(), token_match[2].encode()):
        return None
    if expires <= now.timestamp():
        return None
    return VerifiedLink(request_id, kind, datetime.fromtimestamp(expires, UTC))
