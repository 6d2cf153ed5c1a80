"""The base URL of links the server hands out (image links), safe from a forged `Host`.

A client chooses the `Host` header it sends; a link built from it would send whoever
follows it (an integrator, or the receiver of an `image` webhook) to the client's
choice of server. So links come from `public_url` when it is set; else from the
request's scheme and `Host` only when that host is allowed (`allowed_hosts`, the
address the server listens on, and localhost); else from the address the server
listens on, which no client chooses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.requests import Request

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# A host name or an IPv4 address, or a bracketed IPv6 address, and an optional port:
# nothing else (no path, no user information) may come into a link from a header.
_HOST = re.compile(r"(?P<name>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")


def _authority(host: str, port: int | None, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None or DEFAULT_PORTS.get(scheme) == port else f"{shown}:{port}"


def _allowed_host_header(request: Request, allowed: Iterable[str]) -> str | None:
    """The request's `Host` header when its host is allowed, else None."""
    header = request.headers.get("host", "")
    match = _HOST.fullmatch(header)
    if match is None:
        return None
    name = match["name"].strip("[]").lower().rstrip(".")
    server = request.scope.get("server")
    trusted = {*LOCAL_HOSTS, *(host.lower().rstrip(".") for host in allowed)}
    if server:
        trusted.add(str(server[0]).lower())
    return header if name in trusted else None


def public_base_url(request: Request, public_url: str | None, allowed_hosts: Iterable[str]) -> str:
    """The base of absolute links answered to this request, without a trailing slash."""
    if public_url:
        return public_url.rstrip("/")
    scheme = str(request.scope.get("scheme", "http"))
    root_path = request.scope.get("root_path", "").rstrip("/")
    host = _allowed_host_header(request, allowed_hosts)
    if host is None:
        server = request.scope.get("server")
        host = _authority(str(server[0]), server[1], scheme) if server else "localhost"
    return f"{scheme}://{host}{root_path}"
