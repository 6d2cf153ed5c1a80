"""Which HTTP client should send webhooks: aiohttp or httpx, measured on this machine.

A receiver (aiohttp.web on 127.0.0.1, answering 200 and a small JSON to every POST) runs
in a subprocess of its own, so that it does not share the client's event loop or CPU
accounting. In this process, for each concurrency level, each client sends the same
1 KB JSON body over keep-alive connections from `concurrency` coroutines for
`--duration` seconds after a warm-up, `--repeat` times, interleaved:

  aiohttp  one `aiohttp.ClientSession`, `TCPConnector(limit=concurrency)`
  httpx    one `httpx.AsyncClient`, `Limits(max_connections=concurrency)`
  sender   `vsense.webhooks.sender.Sender` (aiohttp with the address policy, the
           guarded resolver and the `Outcome` bookkeeping), loopback allowed
  signed   the lean reference of an attempt: aiohttp, the Standard Webhooks headers
           signed with `hmac` inline, the head of the answer read
  attempt  vsense's attempt path: the request built and signed from a prepared delivery
           (`webhooks.request.build_request`), sent by `Sender`, its outcome decided
           (`webhooks.policy.after_attempt`)

Reported per client and level, from the median run by requests/s: requests/s, p50/p99
latency, errors (anything but a 200; all runs), and the client's CPU time per request
(process time over the run / requests): the receiver shares this machine, so CPU per
request is the figure least affected by it.

Run from the repository root:

    .venv/bin/python bench/http_clients.py --duration 5 --repeat 3 --markdown docs/benchmarks.md

`--markdown PATH` appends a section to PATH. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import os
import platform
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
import orjson

from harness import HOST, free_port, wait_listening

BODY = orjson.dumps({"stream_id": "0" * 36, "type": "VPM", "timestamp": 1, "pad": "x" * 940})
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/plain, */*"}
CLIENTS = ("aiohttp", "httpx", "sender", "signed", "attempt")
SECRET = "whsec_" + base64.b64encode(b"bench-secret-of-32-bytes-exactly").decode()

Send = Callable[[], Awaitable[int]]


@dataclass
class Result:
    client: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    cpu_seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / max(self.requests, 1) * 1e6


# --------------------------------------------------------------------------- receiver


def serve(port: int) -> None:
    """The receiver process: 200 and a small JSON for every POST, no access log."""
    from aiohttp import web

    with contextlib.suppress(ImportError):
        import uvloop  # a faster receiver leaves more of the machine to the clients

        uvloop.install()

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/hook", receive)
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)


# --------------------------------------------------------------------------- clients


@contextlib.asynccontextmanager
async def client(name: str, url: str, concurrency: int) -> AsyncIterator[Send]:
    """Yields a `send()` coroutine function for the named client, closing it afterwards."""
    if name == "aiohttp":
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def send_aiohttp() -> int:
                async with session.post(url, data=BODY, headers=HEADERS) as response:
                    await response.read()
                    return response.status

            yield send_aiohttp
    elif name == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:

            async def send_httpx() -> int:
                response = await http.post(url, content=BODY, headers=HEADERS)
                return response.status_code

            yield send_httpx
    elif name == "sender":
        from vsense.webhooks.sender import Sender
        from vsense.webhooks.ssrf import AddressPolicy

        policy = AddressPolicy(allow_private=True)
        async with Sender(policy, user_agent="bench", limit_per_host=concurrency) as sender:

            async def send_sender() -> int:
                outcome = await sender.send("POST", url, headers=HEADERS, body=BODY, timeout=30)
                return outcome.status_code or 0

            yield send_sender
    elif name == "signed":
        connector = aiohttp.TCPConnector(limit=concurrency)
        key = base64.b64decode(SECRET.removeprefix("whsec_"))
        timeout = aiohttp.ClientTimeout(total=30)
        ids = itertools.count()
        async with aiohttp.ClientSession(connector=connector) as session:

            async def send_signed() -> int:
                msg_id, now = f"msg_{next(ids)}", int(time.time())
                mac = hmac.new(key, f"{msg_id}.{now}.".encode() + BODY, hashlib.sha256).digest()
                headers = HEADERS | {
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(now),
                    "webhook-signature": "v1," + base64.b64encode(mac).decode(),
                }
                async with session.post(
                    url, data=BODY, headers=headers, timeout=timeout, allow_redirects=False
                ) as response:
                    await response.content.read(2048)
                    return response.status

            yield send_signed
    elif name == "attempt":
        from vsense.kit.time import utcnow
        from vsense.webhooks import policy as delivery_policy
        from vsense.webhooks.domain import Prepared
        from vsense.webhooks.request import USER_AGENT, build_request
        from vsense.webhooks.sender import Sender
        from vsense.webhooks.ssrf import AddressPolicy

        ids = itertools.count()
        device = uuid.uuid4()
        policy = AddressPolicy(allow_private=True)
        # As the dispatcher's `SenderSlot` opens it: no cap per host.
        async with Sender(policy, user_agent=USER_AGENT, limit_per_host=0) as sender:

            async def send_attempt() -> int:
                n = next(ids)
                item = Prepared(
                    n, 1, device, 0, "payload", f"msg_{n}", BODY, True, "POST", url, (), (),
                    (SECRET,),
                )  # fmt: skip
                at = utcnow()
                request = build_request(item, int(at.timestamp()))
                sent = await sender.send(
                    request.method,
                    request.url,
                    headers=request.headers,
                    body=request.body,
                    timeout=30,
                )
                delivery_policy.after_attempt(item, sent, at)
                return sent.status_code or 0

            yield send_attempt
    else:
        raise SystemExit(f"unknown client {name!r}")


async def load(send: Send, concurrency: int, seconds: float, latencies: list[float]) -> int:
    """Requests from `concurrency` coroutines until `seconds` pass; returns the errors."""
    deadline = time.perf_counter() + seconds
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while (started := time.perf_counter()) < deadline:
            try:
                status = await send()
            except Exception:
                status = 0
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


async def measure(name: str, url: str, concurrency: int, seconds: float, warmup: float) -> Result:
    async with client(name, url, concurrency) as send:
        await load(send, concurrency, warmup, [])
        latencies: list[float] = []
        cpu, started = time.process_time(), time.perf_counter()
        errors = await load(send, concurrency, seconds, latencies)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Result(name, concurrency, len(latencies), errors, elapsed, cpu, latencies)


# --------------------------------------------------------------------------- report


def summary(results: list[Result]) -> list[tuple[Result, list[Result]]]:
    """Per (client, concurrency): the median run by req/s, and all runs of it."""
    groups: dict[tuple[str, int], list[Result]] = {}
    for result in results:
        groups.setdefault((result.client, result.concurrency), []).append(result)
    rows = []
    for runs in groups.values():
        ordered = sorted(runs, key=lambda r: r.rate)
        rows.append((ordered[len(ordered) // 2], ordered))
    return sorted(rows, key=lambda row: (row[0].concurrency, CLIENTS.index(row[0].client)))


def table(results: list[Result]) -> str:
    lines = [
        "| client | concurrency | req/s (median) | req/s (all runs) | p50 ms | p99 ms "
        "| errors | client CPU µs/req |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for median, runs in summary(results):
        every = " / ".join(f"{r.rate:,.0f}" for r in runs)
        lines.append(
            f"| {median.client} | {median.concurrency} | {median.rate:,.0f} | {every} "
            f"| {median.percentile(0.5):.1f} | {median.percentile(0.99):.1f} "
            f"| {sum(r.errors for r in runs)} | {median.cpu_us_per_request:.0f} |"
        )
    return "\n".join(lines)


def ratios(results: list[Result]) -> list[str]:
    by_key = {(m.client, m.concurrency): m for m, _ in summary(results)}
    lines = []
    for concurrency in sorted({r.concurrency for r in results}):
        a, h = by_key.get(("aiohttp", concurrency)), by_key.get(("httpx", concurrency))
        lean, ours = by_key.get(("signed", concurrency)), by_key.get(("attempt", concurrency))
        if lean and ours:
            lines.append(
                f"- concurrency {concurrency}: vsense's attempt path {ours.cpu_us_per_request:.0f}"
                f" µs of client CPU per request, the lean signed request "
                f"{lean.cpu_us_per_request:.0f} µs: lean / vsense "
                f"{lean.cpu_us_per_request / ours.cpu_us_per_request:.2f}"
            )
        if a and h:
            lines.append(
                f"- concurrency {concurrency}: aiohttp {a.rate / h.rate:.1f}x the req/s of "
                f"httpx (medians), {h.cpu_us_per_request / a.cpu_us_per_request:.1f}x less "
                "client CPU per request"
            )
    return lines


def markdown(results: list[Result], args: argparse.Namespace) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    versions = f"aiohttp {aiohttp.__version__}, httpx {httpx.__version__}"
    return "\n".join(
        [
            "",
            f"## HTTP client for webhook delivery, {now} UTC",
            "",
            f"- Command: `.venv/bin/python bench/http_clients.py --duration {args.duration:g} "
            f"--repeat {args.repeat} --markdown {args.markdown}`",
            f"- Machine: {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, {versions}; client and receiver share it",
            "- Load: one 1 KB JSON body POSTed over keep-alive connections to an aiohttp.web "
            "receiver in its own process (uvloop), "
            f"{args.duration:g} s per run after {args.warmup:g} s warm-up, {args.repeat} "
            "interleaved runs per row (the median run is shown); `sender` is "
            "vsense's `Sender` (aiohttp with the address policy and outcome bookkeeping)",
            "",
            table(results),
            "",
            *ratios(results),
            "",
        ]
    )


async def main_async(args: argparse.Namespace) -> list[Result]:
    port = free_port()
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(port), start_new_session=True
    )
    try:
        await wait_listening(port, receiver)
        url = f"http://{HOST}:{port}/hook"
        results = []
        # Runs interleave (every client, then again) so that drift of a shared, noisy
        # machine spreads over all clients instead of favouring one.
        for concurrency in args.concurrency:
            for _ in range(args.repeat):
                for name in args.clients:
                    result = await measure(name, url, concurrency, args.duration, args.warmup)
                    print(table([result]).splitlines()[-1], flush=True)
                    results.append(result)
        return results
    finally:
        if receiver.returncode is None:
            receiver.terminate()
        try:
            await asyncio.wait_for(receiver.wait(), 10)
        except TimeoutError:
            receiver.kill()
            await receiver.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[64, 256]
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per client and level")
    parser.add_argument("--clients", type=lambda s: s.split(","), default=list(CLIENTS))
    parser.add_argument("--markdown", type=Path, help="append a section to this file")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    results = asyncio.run(main_async(args))
    print()
    print(table(results))
    print("\n".join(ratios(results)))
    if args.markdown:
        with args.markdown.open("a", encoding="utf-8") as document:
            document.write(markdown(results, args))
    if any(r.errors for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
