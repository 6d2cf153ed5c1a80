"""The Python SDK of the vsense API.

```python
from vsense.client import Client

with Client(base_url="api.example.com", token="vst_...") as client:
    for device in client.devices.list_all(is_online=True):
        print(device.name)
```

`AsyncClient` has the same resources, awaited. The SDK needs only httpx and pydantic
and imports nothing from the server.
"""

from __future__ import annotations

__version__ = "0.1.0"

from vsense.client._async import AsyncClient
from vsense.client._base import Credentials, normalize_api_addr
from vsense.client._sync import Client
from vsense.client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ImageCaptureError,
    InternalServerError,
    MethodNotAllowedError,
    MissingCredentialsError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnprocessableEntityError,
    VsenseError,
    WebhookVerificationError,
)
from vsense.client.resources._resource import NOT_GIVEN, NotGiven
from vsense.client.signatures import verify as verify_webhook

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Credentials",
    "ImageCaptureError",
    "InternalServerError",
    "MethodNotAllowedError",
    "MissingCredentialsError",
    "NotFoundError",
    "NotGiven",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
    "VsenseError",
    "WebhookVerificationError",
    "normalize_api_addr",
    "verify_webhook",
]
