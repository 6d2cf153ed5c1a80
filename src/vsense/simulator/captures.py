"""Snapshots of simulated sensors: a `capture_image` command, answered after a delay by
rendering the scene (`render.py`) and uploading both images over HTTP, as real devices
do whatever transport carries their commands (spec/devices.md)."""

from __future__ import annotations

import asyncio
import random
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from vsense.simulator.render import render
from vsense.simulator.scenes import Scene

DEFAULT_CAPTURE_DELAY_S = 20.0  # about what real hardware takes
Send = Callable[..., Awaitable[httpx.Response | None]]


@dataclass(frozen=True, slots=True)
class Capture:
    """A capture the device has promised: due at `due` (wall-clock seconds)."""

    due: float
    command_id: str
    request_id: str


async def take_capture(
    send: Send,
    describe: Callable[[httpx.Response], str],
    *,
    identifier: str,
    token: str,
    scene: Scene,
    request_id: str,
    now: float,
) -> dict[str, Any]:
    """Render the scene and upload the raw and the annotated image; the command's result."""
    # Seeded by device and request: the two images agree, and a retry draws the same.
    rng = random.Random(f"{identifier}/{request_id}")
    try:
        raw, annotated = await asyncio.to_thread(render, scene, now, rng)
    except Exception as exc:  # a drawing bug must not stop the device
        return {"ok": False, "error": f"rendering failed: {exc!r}"[:500]}
    request = urllib.parse.quote(request_id, safe="")
    for kind, data, media_type in (
        ("raw", raw, "image/jpeg"),
        ("annotated", annotated, "image/png"),
    ):
        response = await send(
            "PUT",
            f"/device/v1/images/{request}/{kind}",
            token=token,
            content=data,
            content_type=media_type,
        )
        if response is None:
            return {"ok": False, "error": f"the {kind} image could not be uploaded"}
        if response.status_code != 204:
            return {
                "ok": False,
                "error": f"the {kind} image was refused: {describe(response)}"[:500],
            }
    return {"ok": True}
