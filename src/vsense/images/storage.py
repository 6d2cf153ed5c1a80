"""Where images are kept: one small interface, a local folder and any S3-compatible store.

Keys are `<request_id>_<kind>` (`image_key`). Both stores are safe to share between the tasks of a
process; blocking calls (file system, boto3) run in worker threads.

An upload is kept in two steps: `stage` before the upload's write transaction opens (the
bytes written beside the key, nothing replaced), then `Staged.keep` once the transaction
has checked that the upload is wanted (the key replaced). For the local store the slow
part, writing the bytes, is then outside the transaction: on SQLite, outside the write
lock every other write waits for.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from vsense.config import Settings
from vsense.kit.files import private_folder


def image_key(request_id: uuid.UUID, kind: str) -> str:
    """The key of a request's image of one kind."""
    return f"{request_id}_{kind}"


class Staged(Protocol):
    """Bytes made ready to be kept under a key."""

    # Whether `keep` is quick (a rename, no transfer): it may then run in a transaction
    # that other requests share without keeping them waiting.
    quick: bool

    async def keep(self) -> None:
        """Keep them under the key, replacing what was there; once kept, again does
        nothing (a unit of work run again after its group's rollback keeps again)."""


class ImageStore(Protocol):
    """What the image service needs of a store."""

    def stage(
        self, key: str, data: bytes, content_type: str
    ) -> AbstractAsyncContextManager[Staged]:
        """`data` made ready to be kept under `key`, nothing replaced yet; what is not
        kept when the block ends is discarded."""

    async def get(self, key: str) -> bytes | None:
        """The bytes under `key`, or None when there are none."""

    def presigned_url(self, key: str, seconds: int) -> str | None:
        """A URL that serves `key` for `seconds` without the server, or None when the
        store has no such thing (the server then sends the bytes itself)."""

    async def delete_older_than(self, cutoff: datetime) -> int:
        """Delete every image stored before `cutoff`; how many were deleted."""


class LocalImageStore:
    """Files under one folder (`<data_dir>/images`), spread over 256 sub-folders."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    @asynccontextmanager
    async def stage(self, key: str, data: bytes, content_type: str) -> AsyncIterator[Staged]:
        path = self.path(key)
        staged = _StagedFile(await asyncio.to_thread(self._write_beside, path, data), path)
        try:
            yield staged
        finally:
            if not staged.kept:
                await asyncio.to_thread(staged.temporary.unlink, missing_ok=True)

    @staticmethod
    def _write_beside(path: Path, data: bytes) -> Path:
        """`data` in a new file beside `path` (a crash leaves it to retention)."""
        private_folder(path.parent)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return Path(temporary)

    async def get(self, key: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self.path(key).read_bytes)
        except FileNotFoundError:
            return None

    def presigned_url(self, key: str, seconds: int) -> str | None:
        return None

    async def delete_older_than(self, cutoff: datetime) -> int:
        return await asyncio.to_thread(self._delete_older_than, cutoff.timestamp())

    def _files(self) -> Iterator[Path]:
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if folder.is_dir():
                    yield from folder.iterdir()

    def _delete_older_than(self, cutoff: float) -> int:
        deleted = 0
        for path in self._files():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    deleted += 1
            except FileNotFoundError:
                continue  # deleted meanwhile by another process
        return deleted


class _StagedFile:
    """A file written beside its key's: kept by a rename, so that a reader sees the old
    file or the whole new one (a rename is quick: done in the event loop)."""

    quick = True

    def __init__(self, temporary: Path, path: Path) -> None:
        self.temporary, self.path, self.kept = temporary, path, False

    async def keep(self) -> None:
        if not self.kept:
            os.replace(self.temporary, self.path)
            self.kept = True


class _StagedObject:
    """An object to put: S3 has nothing to stage, the put itself is the keeping."""

    quick = False  # the bytes go over the network

    def __init__(self, store: S3ImageStore, key: str, data: bytes, content_type: str) -> None:
        self.store, self.key, self.data, self.content_type = store, key, data, content_type
        self.kept = False

    async def keep(self) -> None:
        if self.kept:
            return
        await asyncio.to_thread(
            self.store.client.put_object,
            Bucket=self.store.bucket,
            Key=self.store.prefix + self.key,
            Body=self.data,
            ContentType=self.content_type,
        )
        self.kept = True


class S3ImageStore:
    """Objects in a bucket of an S3-compatible store, through boto3.

    boto3 rather than an async client: it is the reference implementation that every
    S3-compatible store tests against, its clients are thread-safe, and an image is one
    request, so a worker thread per call costs little beside the transfer.
    """

    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        def secret(value: Any) -> str | None:
            return None if value is None else str(value.get_secret_value())

        self.bucket = settings.image_s3_bucket or ""
        self.prefix = settings.image_s3_prefix
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.image_s3_endpoint,
            region_name=settings.image_s3_region,
            aws_access_key_id=secret(settings.image_s3_access_key),
            aws_secret_access_key=secret(settings.image_s3_secret_key),
            config=Config(
                signature_version="s3v4",
                # Path-style addressing works with every S3-compatible server.
                s3={"addressing_style": "path" if settings.image_s3_endpoint else "auto"},
                max_pool_connections=32,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    @asynccontextmanager
    async def stage(self, key: str, data: bytes, content_type: str) -> AsyncIterator[Staged]:
        yield _StagedObject(self, key, data, content_type)

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, self.prefix + key)

    def _get(self, full_key: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=full_key)
        except self.client.exceptions.NoSuchKey:
            return None
        body: bytes = answer["Body"].read()
        return body

    def presigned_url(self, key: str, seconds: int) -> str | None:
        # Computed locally (no request to the store).
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.prefix + key},
            ExpiresIn=max(1, seconds),
        )
        return url

    async def delete_older_than(self, cutoff: datetime) -> int:
        return await asyncio.to_thread(self._delete_older_than, cutoff)

    def _delete_older_than(self, cutoff: datetime) -> int:
        deleted = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            old = [
                {"Key": item["Key"]}
                for item in page.get("Contents", [])
                if item["LastModified"] < cutoff
            ]
            if old:  # a page holds at most 1,000 keys, as many as one delete takes
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": old})
                deleted += len(old)
        return deleted


def open_store(settings: Settings) -> ImageStore:
    """The store the settings name: S3-compatible, or a local folder."""
    if settings.image_storage == "s3":
        return S3ImageStore(settings)
    return LocalImageStore(settings.data_dir / "images")
