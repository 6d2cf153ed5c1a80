"""The image stores' two-step keeping of an upload: staged, then kept or discarded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.images.helpers import storage_settings
from vsense.config import Settings
from vsense.images.storage import ImageStore, open_store


def leftovers(folder: Path) -> list[str]:
    return [path.name for path in folder.rglob(".upload-*")]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, s3_endpoint: str, tmp_path: Path) -> ImageStore:
    settings = Settings(data_dir=tmp_path)
    return open_store(storage_settings(settings, request.param, s3_endpoint))


async def test_a_staged_image_replaces_the_stored_one_only_once_kept(
    store: ImageStore, tmp_path: Path
) -> None:
    async with store.stage("request_raw", b"first", "image/png") as staged:
        assert await store.get("request_raw") is None  # staged: nothing there yet
        await staged.keep()
    assert await store.get("request_raw") == b"first"

    async with store.stage("request_raw", b"refused", "image/png"):
        pass  # the upload was not wanted: never kept
    assert await store.get("request_raw") == b"first"

    async with store.stage("request_raw", b"second", "image/png") as staged:
        await staged.keep()
    assert await store.get("request_raw") == b"second"
    assert leftovers(tmp_path) == []  # nothing left beside


async def test_keeping_again_does_nothing(store: ImageStore, tmp_path: Path) -> None:
    """A unit of work run again after its group's rollback keeps its upload again."""
    async with store.stage("request_raw", b"first", "image/png") as staged:
        await staged.keep()
        async with store.stage("request_raw", b"second", "image/png") as later:
            await later.keep()
        await staged.keep()  # not "first" again over "second"
    assert await store.get("request_raw") == b"second"
    assert leftovers(tmp_path) == []
