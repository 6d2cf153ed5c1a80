"""`client.images`: ask a device for a snapshot, then fetch its two signed links."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from vsense.client._base import query
from vsense.client.errors import ImageCaptureError, status_error
from vsense.client.models import CapturedImages, Image, ImageRequest, ImageRequestSummary, Page
from vsense.client.resources._resource import AsyncResource, SyncResource, path
from vsense.client.retry_after import retry_after_seconds

DEFAULT_WAIT_S = 300.0
DEFAULT_POLL_S = 2.0
# Called while waiting with the seconds waited so far.
Progress = Callable[[float], None]
# The waiting clock (a module attribute, so that tests can drive it).
_clock = time.monotonic


def _read_link(url: str, response: httpx.Response) -> Image | None:
    """The image behind a link once uploaded, `None` while pending; raises otherwise."""
    if response.status_code == 200:
        content_type = response.headers.get("content-type", "application/octet-stream")
        return Image(url=url, content_type=content_type.split(";")[0], content=response.content)
    if response.status_code == 202:
        return None
    if response.status_code == 504:
        raise ImageCaptureError("The device did not deliver the image (capture failed).")
    raise status_error(response, retry_after_seconds(response))


def _pause(response: httpx.Response | None, poll_interval: float, remaining: float) -> float:
    wait = retry_after_seconds(response) if response is not None else None
    return max(0.0, min(wait if wait is not None else poll_interval, remaining))


def _timed_out(request: ImageRequest, timeout: float) -> ImageCaptureError:
    return ImageCaptureError(
        f"Image request {request.request_id} was still pending after {timeout:.0f} s."
    )


class Images(SyncResource):
    def request(self, device_uuid: str) -> ImageRequest:
        """Ask a device for a new snapshot. Answers at once with two signed links (raw
        and annotated) that serve the images once the device uploaded them. A request
        while one is pending returns the pending one; an offline device is a conflict."""
        return self._client._call("POST", f"/devices/{path(device_uuid)}/image", cast=ImageRequest)

    def list(
        self, device_uuid: str, *, page: int | None = None, per_page: int | None = None
    ) -> Page[ImageRequestSummary]:
        """The device's recent snapshot requests with their status and, while valid, links."""
        return self._client._call(
            "GET",
            f"/devices/{path(device_uuid)}/images",
            cast=Page[ImageRequestSummary],
            params=query(page=page, per_page=per_page),
        )

    def fetch(self, url: str) -> Image | None:
        """The image behind a signed link, or `None` while the device has not uploaded it.
        Raises `ImageCaptureError` if the capture failed and `PermissionDeniedError` once
        the link expired. Links need no token."""
        return _read_link(
            url, self._client._send("GET", url, authenticated=False, follow_redirects=True)
        )

    def wait(
        self,
        request: ImageRequest,
        *,
        timeout: float = DEFAULT_WAIT_S,
        poll_interval: float = DEFAULT_POLL_S,
        on_progress: Progress | None = None,
    ) -> CapturedImages:
        """Poll both links of `request` until the images are there (honouring the
        server's `Retry-After`) and return them. Raises `ImageCaptureError` on failure
        or after `timeout` seconds."""
        started = _clock()
        found: dict[str, Image] = {}
        for kind, url in (("raw", request.raw_url), ("annotated", request.annotated_url)):
            while kind not in found:
                response = self._client._send(
                    "GET", url, authenticated=False, follow_redirects=True
                )
                image = _read_link(url, response)
                if image is not None:
                    found[kind] = image
                    break
                remaining = timeout - (_clock() - started)
                if remaining <= 0:
                    raise _timed_out(request, timeout)
                if on_progress is not None:
                    on_progress(_clock() - started)
                time.sleep(_pause(response, poll_interval, remaining))
        return CapturedImages(
            request_id=request.request_id, raw=found["raw"], annotated=found["annotated"]
        )


class AsyncImages(AsyncResource):
    async def request(self, device_uuid: str) -> ImageRequest:
        """Ask a device for a new snapshot (see `Images.request`)."""
        return await self._client._call(
            "POST", f"/devices/{path(device_uuid)}/image", cast=ImageRequest
        )

    async def list(
        self, device_uuid: str, *, page: int | None = None, per_page: int | None = None
    ) -> Page[ImageRequestSummary]:
        """The device's recent snapshot requests with their status and, while valid, links."""
        return await self._client._call(
            "GET",
            f"/devices/{path(device_uuid)}/images",
            cast=Page[ImageRequestSummary],
            params=query(page=page, per_page=per_page),
        )

    async def fetch(self, url: str) -> Image | None:
        """The image behind a signed link, or `None` while pending (see `Images.fetch`)."""
        return _read_link(
            url, await self._client._send("GET", url, authenticated=False, follow_redirects=True)
        )

    async def wait(
        self,
        request: ImageRequest,
        *,
        # The same parameter as the sync `wait`: one signature for both clients.
        timeout: float = DEFAULT_WAIT_S,  # noqa: ASYNC109
        poll_interval: float = DEFAULT_POLL_S,
        on_progress: Progress | None = None,
    ) -> CapturedImages:
        """Poll both links until the images are there (see `Images.wait`)."""
        started = _clock()
        found: dict[str, Image] = {}
        for kind, url in (("raw", request.raw_url), ("annotated", request.annotated_url)):
            while kind not in found:
                response = await self._client._send(
                    "GET", url, authenticated=False, follow_redirects=True
                )
                image = _read_link(url, response)
                if image is not None:
                    found[kind] = image
                    break
                remaining = timeout - (_clock() - started)
                if remaining <= 0:
                    raise _timed_out(request, timeout)
                if on_progress is not None:
                    on_progress(_clock() - started)
                await asyncio.sleep(_pause(response, poll_interval, remaining))
        return CapturedImages(
            request_id=request.request_id, raw=found["raw"], annotated=found["annotated"]
        )
