"""Templates and the console's answers: pages, fragments for htmx, errors as HTML.

Console routes use `ConsoleRoute`: an error the services raise (the API's own errors,
with the API's statuses) is answered as a page, or as a message in the page's flash
area when htmx asked; a missing session sends the browser to the login page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from vsense.console.sessions import LoginRequired, set_session_cookies
from vsense.kit.errors import AppError
from vsense.kit.time import isoformat, utcnow

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
CONSOLE = "/console"
# Pages hold a session's data: no cache keeps them, no frame shows them, and only this
# origin's scripts run (the vendored htmx and uPlot, and console.js).
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src * data: blob:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """`2 min ago`, as a person reads a time on a status board."""
    if value is None:
        return "never"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = int(((now or utcnow()) - value).total_seconds())
    if seconds < 0:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def when(value: datetime | None) -> str:
    """A time as `2026-11-29 14:05:00 UTC`."""
    text = isoformat(value)
    return "—" if text is None else text.replace("T", " ").replace("Z", " UTC")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


environment = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
environment.filters.update(ago=ago, when=when, pretty_json=pretty_json, iso=isoformat)
environment.globals.update(CONSOLE=CONSOLE)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> Response:
    """A template as an HTML answer, with the console's security headers."""
    body = environment.get_template(template).render(request=request, **context)
    return Response(body, status_code=status_code, media_type="text/html", headers=SECURITY_HEADERS)


def redirect(url: str, request: Request) -> Response:
    """A redirect that htmx follows as a full page load (`HX-Redirect`)."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url, **SECURITY_HEADERS})
    return Response(status_code=303, headers={"Location": url, **SECURITY_HEADERS})


def flash(request: Request, message: str, *, trigger: str | None = None) -> Response:
    """A message in the page's flash area, answering an htmx request; `trigger` names
    an event that makes the parts of the page it concerns reload."""
    response = render(request, "_flash.html", message=message, details=[])
    response.headers.update({"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
    if trigger:
        response.headers["HX-Trigger"] = trigger
    return response


def error_answer(
    request: Request, status_code: int, message: str, details: list[str], **context: Any
) -> Response:
    if is_htmx(request):
        response = render(
            request,
            "_flash.html",
            status_code=status_code,
            message=message,
            details=details,
            error=True,
        )
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return render(
        request,
        "error.html",
        status_code=status_code,
        message=message,
        details=details,
        error=True,
        **context,
    )


def _details(errors: list[dict[str, Any]]) -> list[str]:
    return [f"{e.get('field', '')}: {e.get('message', '')}".strip(": ") for e in errors]


class ConsoleRoute(APIRoute):
    """Answers the services' errors as HTML (see the module's docstring)."""

    def error_context(self, request: Request) -> dict[str, Any]:
        """What an error page needs besides the error (the portal's pages say so)."""
        return {}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            response = await answer(request)
            refreshed = getattr(request.state, "console_cookies", None)
            if refreshed is not None:
                set_session_cookies(response, request, *refreshed)
            return response

        async def answer(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                if request.method != "GET" or is_htmx(request):
                    target = request.headers.get("hx-current-url") or CONSOLE + "/"
                return redirect(f"{CONSOLE}/login?next={quote(target, safe='')}", request)
            except AppError as exc:
                return error_answer(
                    request,
                    exc.status_code,
                    exc.message,
                    _details(exc.errors),
                    **self.error_context(request),
                )
            except ValidationError as exc:
                details = [
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                ]
                return error_answer(
                    request, 422, "Some fields are invalid.", details, **self.error_context(request)
                )
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return route
