"""uvicorn's settings for every HTTP server vsense runs (`vsense serve`, `vsense demo`)."""

from __future__ import annotations

import math
from typing import Any

from vsense.config import Settings


def server_options(settings: Settings) -> dict[str, Any]:
    return {
        "access_log": False,
        # Long polls answer as soon as the stop is asked (vsense.kit.shutdown); other
        # requests get the grace period, then are cancelled.
        "timeout_graceful_shutdown": math.ceil(settings.shutdown_grace.total_seconds()),
        "timeout_keep_alive": math.ceil(settings.http_keepalive_timeout.total_seconds()),
        # uvicorn's own would believe X-Forwarded-For from any local peer; the app
        # believes it only from `trusted_proxies`.
        "proxy_headers": False,
    }
