"""The FastAPI application: routers, error envelope, middleware, health and metrics."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from vsense import __version__
from vsense.accounts.routes import router as accounts_router
from vsense.alerts.routes import alerts_router, rules_router
from vsense.components import Components
from vsense.config import Settings, get_settings
from vsense.console.routes import install_console
from vsense.db import is_unavailable
from vsense.devices.routes import router as devices_router
from vsense.gateway.gate import DEVICE_API, DeviceGateMiddleware
from vsense.gateway.routes import router as gateway_router
from vsense.groups.routes import router as groups_router
from vsense.images.routes import device_router as image_upload_router
from vsense.images.routes import router as images_router
from vsense.kit.errors import (
    STATUS_ERRORS,
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    database_unavailable,
    field_error,
)
from vsense.kit.gc_tuning import tune_for_server
from vsense.kit.http import API_PREFIX, json_response
from vsense.kit.middleware import (
    InFlightLimitMiddleware,
    MetricsMiddleware,
    NoSniffMiddleware,
    RequestGuardMiddleware,
    UnexpectedErrorMiddleware,
)
from vsense.kit.parts import install_parts
from vsense.kit.schemas import ErrorBody
from vsense.kit.shutdown import on_stop_signal
from vsense.payloads.routes import router as payloads_router
from vsense.portal.routes import router as portal_links_router
from vsense.users.routes import me_router
from vsense.users.routes import router as users_router
from vsense.webhooks.routes import router as webhooks_router
from vsense.worker import BackgroundRuntime

logger = logging.getLogger("vsense")


def create_app(
    settings: Settings | None = None,
    state: Components | None = None,
    *,
    background: bool | None = None,
) -> FastAPI:
    """Build the application over its parts (`state`, else built here from `settings`).
    Without arguments it uses the process settings and runs the background jobs
    (liveness writes, offline sweep) for as long as it is served."""
    settings = settings or (state.settings if state else get_settings())
    owns_state = state is None
    run_background = owns_state if background is None else background
    parts = state or Components.for_server(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = BackgroundRuntime(parts)
        app.state.background = runtime  # /readyz reports the MQTT bridge
        undo_signals = on_stop_signal(runtime.stopping)
        parts.changes.start()  # other processes' changes to what this one caches
        if run_background:
            runtime.start()
        try:
            yield
        finally:
            undo_signals()
        if run_background:
            await runtime.stop()
        await parts.changes.stop()
        if owns_state:
            parts.metrics.process_ended()
            await parts.engine.dispose()

    app = FastAPI(
        title="vsense",
        version=__version__,
        description="Integrator API of vsense, an open platform for fleets of vision sensors.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
        # Metrics are our own Prometheus registry; the built-in OpenTelemetry hooks
        # would only cost time on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_parts(app, parts.route_parts())

    # Routing tries the routers in this order, route by route: the busiest paths come
    # first (devices' requests, snapshots and their links, the device list), so that
    # they are found before the rarer ones are tried. No two routers share a path.
    for router in (
        gateway_router,
        image_upload_router,
        images_router,
        devices_router,
        payloads_router,
        accounts_router,
        me_router,
        groups_router,
        users_router,
        webhooks_router,
        rules_router,
        alerts_router,
        portal_links_router,
    ):
        app.include_router(router)
    app.include_router(_operations_router(parts))
    install_console(app)
    _install_error_handlers(app)
    app.add_middleware(
        RequestGuardMiddleware,
        max_bytes=settings.max_body_bytes,
        # First match wins: image uploads before the rest of the device API.
        larger_limits={
            "/device/v1/images/": settings.image_max_bytes,
            "/device/v1/": settings.device_max_body_bytes,
        },
    )
    # Before the size guard: a device request is authenticated before its body is read.
    app.add_middleware(DeviceGateMiddleware, device_auth=parts.device_auth)
    app.add_middleware(
        InFlightLimitMiddleware, limit=settings.max_requests_in_flight, exempt=_not_counted
    )
    app.add_middleware(MetricsMiddleware, metrics=parts.metrics)
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(NoSniffMiddleware)
    if settings.trusted_proxies:
        # The only place a forwarded client address or scheme is believed, and only from
        # these peers (`vsense serve` leaves uvicorn's own, which trusts any local peer, off).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def served_app() -> FastAPI:
    """The application as `vsense serve` runs it in each worker process: built from the
    process settings, then the garbage collector tuned for a long-lived server
    (`kit.gc_tuning`; not in `create_app`, which tests call many times in one process)."""
    app = create_app()
    tune_for_server()
    return app


def _not_counted(scope: Scope) -> bool:
    """Requests outside the in-flight bound: long polls (they wait by design, holding
    no body and no database connection) and the operations endpoints (so a saturated
    process still says so)."""
    path = scope["path"]
    return path in OPERATIONS_PATHS or (
        scope["method"] == "GET" and path == f"{DEVICE_API}commands"
    )


def _operations_router(parts: Components) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: the database answers, and the MQTT bridge (when configured) is "
        "connected and its broker drops no messages",
        responses={
            503: {
                "model": ErrorBody,
                "description": "The database is unreachable, the MQTT bridge is not connected, "
                "or its broker dropped messages in the last two minutes",
            }
        },
    )
    async def readyz(request: Request) -> dict[str, str]:
        try:
            async with parts.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            raise ServiceUnavailable("The database is unreachable.") from exc
        runtime: BackgroundRuntime | None = getattr(request.app.state, "background", None)
        bridge = runtime.mqtt if runtime is not None else None
        if bridge is not None and not bridge.connected.is_set():
            raise ServiceUnavailable("The MQTT bridge is not connected to its broker.")
        if bridge is not None and bridge.drops.dropping():
            raise ServiceUnavailable(
                f"The MQTT broker dropped {bridge.drops.recent} messages lately "
                f"({bridge.drops.total} since it started): its queues are too small for "
                "the traffic, or the bridge too slow."
            )
        return {"status": "ready"}

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def metrics(request: Request) -> Response:
        """Open in development and tests; behind `metrics_token` when it is set; refused
        in production without one (the figures describe the fleet and its traffic)."""
        _check_metrics_access(request, parts.settings)
        body = parts.metrics.exposition()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router


def _check_metrics_access(request: Request, settings: Settings) -> None:
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if token is None:
        if settings.environment == "production":
            raise Forbidden("Metrics are served in production only with VSENSE_METRICS_TOKEN.")
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise Unauthorized("The metrics token is required (Authorization: Bearer ...).")


def _error(error: AppError) -> Response:
    response = json_response(error.body(), error.status_code)
    response.headers.update(error.headers)
    # Also on the answers of the outermost error handler, which no middleware wraps.
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_: Request, exc: AppError) -> Response:
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error_class = STATUS_ERRORS.get(exc.status_code, BadRequest)
        if exc.status_code == 404:
            return _error(NotFound(f"Nothing at {request.url.path}."))
        if exc.status_code == 405:
            return _error(error_class(f"{request.method} is not supported on {request.url.path}."))
        return _error(error_class(exc.detail if isinstance(exc.detail, str) else None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return _error(_validation_to_app_error(exc))

    @app.exception_handler(IntegrityError)
    async def integrity_error(_: Request, exc: IntegrityError) -> Response:
        logger.info("integrity error answered 409: %s", exc.orig)
        return _error(Conflict("The change conflicts with existing data."))

    @app.exception_handler(DataError)
    async def data_error(_: Request, exc: DataError) -> Response:
        logger.info("data error answered 400: %s", exc.orig)
        return _error(BadRequest("A value is out of range or cannot be stored."))

    async def database_error(_: Request, exc: Exception) -> Response:
        # An outage (or a restart, a full pool, a locked file) is answered 503 with
        # Retry-After so that devices send again; nothing was committed.
        if is_unavailable(exc):
            logger.warning("database unavailable: %s", exc)
            return _error(database_unavailable())
        logger.exception("unexpected database error", exc_info=exc)
        return _error(AppError("The server failed to complete the request."))

    # Handled here rather than by the catch-all below, which the framework re-raises.
    for error_class in (DBAPIError, PoolTimeoutError, OSError, *_driver_errors()):
        app.add_exception_handler(error_class, database_error)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        if is_unavailable(exc):
            return _error(database_unavailable())
        logger.exception("unexpected error", exc_info=exc)
        return _error(AppError("The server failed to complete the request."))


def _driver_errors() -> tuple[type[Exception], ...]:
    """asyncpg's own errors, raised unwrapped when a connection is being opened."""
    import asyncpg  # type: ignore[import-untyped]

    return (asyncpg.PostgresError, asyncpg.InterfaceError)


def _validation_to_app_error(exc: RequestValidationError) -> AppError:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return BadRequest("The body is not valid JSON.")
    if all(e.get("loc", ("",))[0] == "path" for e in errors):
        return NotFound("No such resource.")
    fields = [
        field_error(".".join(str(p) for p in e.get("loc", ())[1:]) or "body", e.get("msg", ""))
        for e in errors
    ]
    if all(e.get("loc", ("",))[0] in ("query", "header", "cookie") for e in errors):
        return BadRequest("A parameter has a bad value.", errors=fields)
    return Unprocessable("The body is invalid; see `error` for each field.", errors=fields)


# The device token's header, as FastAPI documents an optional header parameter.
DEVICE_AUTHORIZATION = {
    "name": "Authorization",
    "in": "header",
    "required": False,
    "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Authorization"},
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """OpenAPI 3.1 where every operation documents the error envelope for any status."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, path_item in schema.get("paths", {}).items():
        for operation in path_item.values():
            if path.startswith(DEVICE_API):
                # The device gate reads it, not a dependency of the route.
                operation.setdefault("parameters", []).append(DEVICE_AUTHORIZATION)
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["content"] = envelope
            responses["default"] = {
                "description": "Error, in the error envelope",
                "content": envelope,
            }
    app.openapi_schema = schema
    return schema
