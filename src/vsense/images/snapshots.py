"""What a process holds for snapshots: the settings they follow, the key of their signed
links, the image store and the cache of ready snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field

from vsense.config import Settings
from vsense.images.cache import ReadyCache
from vsense.images.links import link_key
from vsense.images.storage import ImageStore, open_store


@dataclass(frozen=True, slots=True)
class Snapshots:
    settings: Settings
    link_key: bytes  # signs and checks image links (derived from the secret key)
    store: ImageStore
    ready: ReadyCache = field(default_factory=ReadyCache)

    @classmethod
    def build(cls, settings: Settings, signing_key: str) -> Snapshots:
        return cls(settings, link_key(signing_key), open_store(settings))

    def public_base(self, request_base: str) -> str:
        """The base URL of links: the configured public URL, else the request's own."""
        return (self.settings.public_url or request_base).rstrip("/")
