"""`vsense listen`: a local webhook receiver that checks signatures and prints each call,
for integrators developing their own endpoint."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.json import JSON
from rich.text import Text

from vsense.cli.client.context import CommandError, Context, command
from vsense.cli.client.output import Printer
from vsense.client import WebhookVerificationError, verify_webhook

SHOWN_HEADERS = (
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "user-agent",
)
MAX_BODY_BYTES = 10 * 1024 * 1024


class Call:
    """One received call, checked."""

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        parts = urlsplit(target)
        self.path = parts.path
        self.query = parts.query
        self.headers = headers
        self.body = body
        self.received_at = time.time()
        self.verified: bool | None = None
        self.problem: str | None = None

    def check(self, secrets: list[str]) -> None:
        if not secrets:
            return
        try:
            verify_webhook(self.body, self.headers, secrets)
            self.verified = True
        except WebhookVerificationError as exc:
            self.verified, self.problem = False, exc.message

    def parsed_body(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return self.body.decode(errors="replace")

    def as_json(self) -> dict[str, Any]:
        return {
            "received_at": round(self.received_at, 3),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": {k: v for k, v in self.headers.items() if k in SHOWN_HEADERS},
            "verified": self.verified,
            "error": self.problem,
            "body": self.parsed_body(),
        }


def _show(out: Printer, call: Call) -> None:
    if out.json_mode:
        out.json_line(call.as_json())
        return
    stamp = time.strftime("%H:%M:%S", time.localtime(call.received_at))
    target = call.path + (f"?{call.query}" if call.query else "")
    out.console.rule(Text(f"{stamp}  {call.method} {target}"), align="left")
    webhook_id = call.headers.get("webhook-id", "-")
    if call.verified is None:
        mark = Text("· signature not checked (no --secret)", style="dim")
    elif call.verified:
        mark = Text("✓ signature valid", style="green")
    else:
        mark = Text(f"✗ signature invalid: {call.problem}", style="bold red")
    out.console.print(mark + Text(f"   webhook-id {webhook_id}", style="dim"))
    body = call.parsed_body()
    if isinstance(body, dict | list):
        out.console.print(JSON.from_data(body))
    elif body:
        out.console.print(body, markup=False)
    sys.stdout.flush()


def _handler(out: Printer, secrets: list[str], status: int) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        server_version = "vsense-listen"

        def _receive(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self.send_error(413)
                return
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            call = Call(self.command, self.path, headers, body)
            call.check(secrets)
            with lock:
                _show(out, call)
            if call.verified is False:
                answer = json.dumps({"error": call.problem}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                return
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _receive

        def log_message(self, format: str, *args: Any) -> None:
            pass  # each call is printed by `_show`

    return Handler


def listen(
    cli: Context,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    secret: Annotated[
        list[str] | None,
        typer.Option(
            help="The webhook's signing secret, whsec_... (repeat during a rotation); "
            "without it signatures are not checked. [env: VSENSE_WEBHOOK_SECRET]",
            envvar="VSENSE_WEBHOOK_SECRET",
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        int, typer.Option(min=200, max=599, help="Status to answer valid calls with.")
    ] = 204,
) -> None:
    """Receive webhook calls here: check each signature and print the call.

    JSON output: one line per call. Calls whose signature does not match get 401.
    """
    secrets = [s for s in (secret or []) if s]
    try:
        server = ThreadingHTTPServer((host, port), _handler(cli.out, secrets, status))
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    address = f"http://{host}:{server.server_address[1]}/"
    checking = f"with {len(secrets)} secret(s)" if secrets else "not checked (no --secret)"
    cli.out.stderr.print(
        f"Listening on {address} (signatures {checking}); Ctrl-C stops.", markup=False
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        cli.out.note("stopped")
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    command(app, "listen")(listen)
