"""The S3 image store's own choices: redirect to presigned URLs, or stream through."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.factories import Api
from tests.images.helpers import ask, camera, path_of, picture, storage_settings
from vsense.components import Components
from vsense.config import Settings


@pytest.fixture(params=["redirect", "stream"])
async def state(  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest, database_settings: Settings, shared_engine, s3_endpoint: str
) -> Components:
    settings = storage_settings(
        database_settings, "s3", s3_endpoint, image_s3_delivery=request.param
    )
    return Components.for_server(settings, shared_engine)


async def test_links_redirect_to_presigned_urls_or_stream_the_image(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin)
    asked = await ask(admin, device)
    request_id = asked["meta"]["request_id"]
    jpeg = picture("JPEG")
    for kind in ("raw", "annotated"):
        assert (await device.upload(request_id, kind, jpeg)).status_code == 204
    served = await api.client.get(path_of(asked["data"][0]))
    if api.state.settings.image_s3_delivery == "stream":
        assert served.status_code == 200 and served.content == jpeg
        assert served.headers["content-type"] == "image/jpeg"
        return
    assert served.status_code == 307
    location = served.headers["location"]
    assert location.startswith(api.state.settings.image_s3_endpoint or "")
    # The presigned URL expires with the link.
    expires_in = int(parse_qs(urlsplit(location).query)["X-Amz-Expires"][0])
    max_age = int(served.headers["cache-control"].split("max-age=")[1])
    assert abs(expires_in - max_age) <= 1 and 1700 < expires_in <= 1800
    async with httpx.AsyncClient() as outside:
        stored = await outside.get(location)
    assert stored.status_code == 200 and stored.content == jpeg
