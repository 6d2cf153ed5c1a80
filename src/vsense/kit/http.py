"""Responses and route helpers shared by every domain."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Path, Response

from vsense.kit.schemas import ErrorBody

API_PREFIX = "/api/v1"


# UUIDs lower-case and hyphenated; datetimes (always UTC here) as 2026-11-28T14:05:00Z.
ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS


def json_response(content: Any, status_code: int = 200) -> Response:
    """A JSON answer serialised with orjson (the hot list paths skip model validation)."""
    return Response(
        orjson.dumps(content, option=ORJSON_OPTIONS),
        status_code=status_code,
        media_type="application/json",
    )


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give, all in the envelope."""
    descriptions = {
        400: "Malformed request or bad parameter value",
        401: "Missing, invalid, expired or revoked token",
        403: "Not allowed for this role or token",
        404: "No such resource, or not visible to the caller",
        409: "Conflict with the current state",
        422: "Invalid body; `error` names each field",
        429: "Rate limited; see Retry-After",
    }
    return {
        status: {"model": ErrorBody, "description": descriptions.get(status, "Error")}
        for status in statuses
    }


# Integer ids in paths fit the database's 32-bit keys; anything else is simply not found.
IdPath = Annotated[int, Path(ge=1, le=2_147_483_647)]
