"""Webhook delivery over real HTTP: the sender, the address policy and the signatures.

Every HTTP test talks to a real aiohttp.web receiver on loopback started by the test;
nothing is mocked but a name resolver's answers in the resolver's own tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import ipaddress
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from vsense.client.retry_after import parse_retry_after
from vsense.webhooks.sender import HEAD_BYTES, Sender, SendResult
from vsense.webhooks.signing import new_secret, signature_header, signed_headers
from vsense.webhooks.ssrf import AddressPolicy, BlockedAddress, GuardedResolver, check_url

LONG_BODY = ("0123456789abcdef" * 400).encode()  # 6,400 bytes, more than the head
JSON = {"Content-Type": "application/json"}
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass
class Seen:
    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Receiver:
    port: int
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def _listening_socket(host: str, family: socket.AddressFamily, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver on 127.0.0.1 (and ::1 on the same port when it can) that records requests."""
    ipv4 = _listening_socket("127.0.0.1", socket.AF_INET, 0)
    state = Receiver(port=ipv4.getsockname()[1])

    async def handle(request: web.Request) -> web.StreamResponse:
        state.seen.append(
            Seen(request.method, request.path, request.headers.copy(), await request.read())
        )
        path = request.path
        if path == "/ok":
            return web.Response(body=LONG_BODY)
        if path.startswith("/status/"):
            headers = {}
            if "retry_after" in request.query:
                headers["Retry-After"] = request.query["retry_after"]
            return web.Response(status=int(path.rsplit("/", 1)[1]), text="nope", headers=headers)
        if path == "/redirect":
            raise web.HTTPFound("/ok")
        if path == "/redirect-metadata":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if path == "/hang":
            await state.release.wait()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sockets = [ipv4]
    with contextlib.suppress(OSError):
        sockets.append(_listening_socket("::1", socket.AF_INET6, state.port))
    for sock in sockets:
        await web.SockSite(runner, sock).start()
    yield state
    state.release.set()
    await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    """A sender that may reach loopback, as the tests and the demo configure it."""
    async with Sender(AddressPolicy(allow_private=True), user_agent="vsense-test/1") as sender:
        yield sender


@pytest.fixture
async def guarded_sender() -> AsyncIterator[Sender]:
    """A sender with the default policy: public addresses only."""
    async with Sender(AddressPolicy(), user_agent="vsense-test/1") as sender:
        yield sender


async def post(sender: Sender, url: str, seconds: float = 5.0) -> SendResult:
    return await sender.send("POST", url, headers=JSON, body=b'{"a": 1}', timeout=seconds)


# --------------------------------------------------------------------------- outcomes


async def test_2xx_outcome_keeps_only_the_first_2_kb_of_the_answer(
    sender: Sender, receiver: Receiver
) -> None:
    outcome = await post(sender, receiver.url("/ok"))
    assert outcome.ok and outcome.status_code == 200 and outcome.error is None
    assert outcome.response_head == LONG_BODY[:HEAD_BYTES].decode()
    assert outcome.duration_ms > 0
    assert [s.body for s in receiver.seen] == [b'{"a": 1}']


@pytest.mark.parametrize("status", [500, 410, 404])
async def test_error_status_is_an_http_status_outcome(
    sender: Sender, receiver: Receiver, status: int
) -> None:
    outcome = await post(sender, receiver.url(f"/status/{status}"))
    assert not outcome.ok
    assert (outcome.status_code, outcome.error) == (status, "http_status")
    assert outcome.response_head == "nope"
    assert outcome.retry_after is None


async def test_429_retry_after_in_seconds(sender: Sender, receiver: Receiver) -> None:
    outcome = await post(sender, receiver.url("/status/429?retry_after=120"))
    assert (outcome.status_code, outcome.error, outcome.retry_after) == (429, "http_status", 120)


async def test_429_retry_after_as_http_date(sender: Sender, receiver: Receiver) -> None:
    date = email.utils.formatdate(time.time() + 300, usegmt=True)
    outcome = await post(sender, receiver.url(f"/status/429?retry_after={date}"))
    assert outcome.status_code == 429
    assert outcome.retry_after is not None and 280 < outcome.retry_after <= 300


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", ""])
def test_invalid_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None


def test_retry_after_in_the_past_means_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


async def test_redirect_is_not_followed(sender: Sender, receiver: Receiver) -> None:
    outcome = await post(sender, receiver.url("/redirect"))
    assert (outcome.status_code, outcome.error, outcome.ok) == (302, "redirect", False)
    assert [s.path for s in receiver.seen] == ["/redirect"]


async def test_redirect_to_the_metadata_address_is_not_followed(
    sender: Sender, receiver: Receiver
) -> None:
    outcome = await post(sender, receiver.url("/redirect-metadata"))
    assert (outcome.status_code, outcome.error) == (302, "redirect")
    assert "169.254.169.254" in outcome.detail
    assert len(receiver.seen) == 1


async def test_hanging_receiver_times_out(sender: Sender, receiver: Receiver) -> None:
    started = time.monotonic()
    outcome = await post(sender, receiver.url("/hang"), seconds=1.0)
    assert (outcome.status_code, outcome.error) == (None, "timeout")
    assert time.monotonic() - started < 5
    assert [s.path for s in receiver.seen] == ["/hang"]


async def test_refused_connection_is_a_connect_outcome(sender: Sender) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = await post(sender, f"http://127.0.0.1:{port}/")
    assert (outcome.status_code, outcome.error) == (None, "connect")


async def test_caller_cannot_set_host_or_content_length(sender: Sender, receiver: Receiver) -> None:
    headers = {"Host": "evil.example", "content-length": "1", "X-Token": "t", **JSON}
    outcome = await sender.send(
        "POST", receiver.url("/ok"), headers=headers, body=b"0123456789", timeout=5
    )
    assert outcome.ok
    (seen,) = receiver.seen
    assert seen.headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert seen.headers["Content-Length"] == "10" and seen.body == b"0123456789"
    assert seen.headers["X-Token"] == "t"
    assert seen.headers["User-Agent"] == "vsense-test/1"


async def test_header_with_a_line_break_is_refused_not_sent(
    sender: Sender, receiver: Receiver
) -> None:
    headers = {"X-Token": "t\r\nX-Injected: yes", **JSON}
    outcome = await sender.send("POST", receiver.url("/ok"), headers=headers, body=b"{}", timeout=5)
    assert (outcome.status_code, outcome.error) == (None, "invalid_request")
    assert receiver.seen == []


# --------------------------------------------------------------------------- address policy

REFUSED_BY_DEFAULT = [
    "http://127.0.0.1:{port}/ok",
    "http://2130706433:{port}/ok",
    "http://0x7f000001:{port}/ok",
    "http://0177.0.0.1:{port}/ok",
    "http://127.1:{port}/ok",
    "http://[::1]:{port}/ok",
    "http://[::ffff:127.0.0.1]:{port}/ok",
    "http://[::ffff:7f00:1]:{port}/ok",
    "http://10.0.0.1:{port}/ok",
    "http://192.168.1.1:{port}/ok",
    "http://172.16.0.1:{port}/ok",
    "http://100.64.0.1:{port}/ok",
    "http://169.254.169.254:{port}/ok",
    "http://[fe80::1]:{port}/ok",
    "http://[fd00:ec2::254]:{port}/ok",
    "http://0.0.0.0:{port}/ok",
    "http://localhost:{port}/ok",
]


@pytest.mark.parametrize("template", REFUSED_BY_DEFAULT)
async def test_default_policy_refuses_internal_addresses_without_connecting(
    guarded_sender: Sender, receiver: Receiver, template: str
) -> None:
    url = template.format(port=receiver.port)
    outcome = await post(guarded_sender, url, seconds=3)
    assert (outcome.status_code, outcome.error) == (None, "blocked"), outcome
    assert outcome.detail
    assert receiver.seen == []


@pytest.mark.parametrize("template", REFUSED_BY_DEFAULT)
def test_check_url_refuses_internal_addresses_at_creation(template: str) -> None:
    refusal = check_url(template.format(port=8080), AddressPolicy())
    assert refusal is not None and "may not be contacted" in refusal


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_allow_private_reaches_the_loopback_receiver(
    sender: Sender, receiver: Receiver, host: str
) -> None:
    outcome = await post(sender, receiver.url("/ok", host=host))
    assert outcome.ok
    assert len(receiver.seen) == 1


async def test_allow_networks_opens_exactly_those_networks(receiver: Receiver) -> None:
    policy = AddressPolicy(allow_networks=(LOOPBACK,))
    async with Sender(policy, user_agent="vsense-test/1") as sender:
        reached = await post(sender, receiver.url("/ok"))
        private = await post(sender, "http://10.0.0.1/", seconds=3)
    assert reached.ok
    assert private.error == "blocked"
    assert len(receiver.seen) == 1
    assert check_url(receiver.url("/ok"), policy) is None
    assert check_url("http://10.0.0.1/", policy) is not None


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://[fd00:ec2::254]/"])
async def test_metadata_stays_refused_with_allow_private(sender: Sender, url: str) -> None:
    outcome = await post(sender, url, seconds=3)
    assert (outcome.error, outcome.status_code) == ("blocked", None)
    assert "metadata" in outcome.detail
    assert check_url(url, AddressPolicy(allow_private=True)) is not None


def test_metadata_can_be_allow_listed_explicitly() -> None:
    metadata = ipaddress.ip_network("169.254.169.254/32")
    assert AddressPolicy(allow_networks=(metadata,)).refusal(metadata[0]) is None


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("198.18.0.1", False),
        ("fec0::1", False),
        ("::7f00:1", False),  # IPv4-compatible: an IPv6 address must not match 127/8
    ],
)
def test_policy_judges_embedded_and_special_addresses(address: str, allowed: bool) -> None:
    policy = AddressPolicy(allow_networks=(LOOPBACK,) if address == "::7f00:1" else ())
    assert (policy.refusal(ipaddress.ip_address(address)) is None) is allowed


class FixedResolver(AbstractResolver):
    """Answers every name with the given addresses, as a DNS server under attack might."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_resolver_refuses_a_name_when_any_address_is_internal() -> None:
    resolver = GuardedResolver(AddressPolicy(), FixedResolver("93.184.215.14", "10.0.0.7"))
    with pytest.raises(BlockedAddress, match=r"10\.0\.0\.7 is a private address"):
        await resolver.resolve("rebind.example", 443)


async def test_resolver_passes_public_addresses_through() -> None:
    resolver = GuardedResolver(AddressPolicy(), FixedResolver("93.184.215.14", "2606:2800::1"))
    results = await resolver.resolve("public.example", 443)
    assert [r["host"] for r in results] == ["93.184.215.14", "2606:2800::1"]


# --------------------------------------------------------------------------- check_url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("https://example.com/" + "a" * 2048, "longer than 2048"),
        ("https://user:secret@example.com/hook", "credentials"),
        ("https:///hook", "no host"),
        ("http://exa mple.com/", "not a valid host name"),
        ("http://localhost/", "loopback"),
        ("http://api.localhost./", "loopback"),
    ],
)
def test_check_url_refusals(url: str, words: str) -> None:
    refusal = check_url(url, AddressPolicy())
    assert refusal is not None and words in refusal


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook?x=1",
        "http://203.0.113.5.nip.io:8080/",
        "https://[2606:4700::1111]/",
    ],
)
def test_check_url_accepts_public_urls(url: str) -> None:
    assert check_url(url, AddressPolicy()) is None


def test_check_url_accepts_localhost_when_private_is_allowed() -> None:
    assert check_url("http://localhost:8080/hook", AddressPolicy(allow_private=True)) is None


# --------------------------------------------------------------------------- signatures

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # Standard Webhooks' test vector
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_BODY = b'{"test": 2432232314}'


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    header = signature_header([VECTOR_SECRET], VECTOR_ID, 1614265330, VECTOR_BODY)
    assert header == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_new_secret_is_whsec_and_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and secret != new_secret()
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_signatures_are_byte_identical_to_the_library() -> None:
    current, previous = new_secret(), new_secret()
    timestamp = int(time.time())
    body = '{"stream_id": "d", "name": "Entrée"}'.encode()
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    expected = [Webhook(s).sign(VECTOR_ID, moment, body.decode()) for s in (current, previous)]
    assert signature_header([current, previous], VECTOR_ID, timestamp, body) == " ".join(expected)


def test_receivers_accept_current_and_previous_secret_during_rotation() -> None:
    current, previous = new_secret(), new_secret()
    headers = signed_headers([current, previous], VECTOR_ID, int(time.time()), VECTOR_BODY)
    assert headers["webhook-id"] == VECTOR_ID
    for secret in (current, previous):
        assert Webhook(secret).verify(VECTOR_BODY, headers) == {"test": 2432232314}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(VECTOR_BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(current).verify(b'{"test": 1}', headers)


async def test_signed_request_verifies_at_the_receiver(sender: Sender, receiver: Receiver) -> None:
    secret = new_secret()
    body = b'{"type": "TEST", "timestamp": 1705682525}'
    headers = {**JSON, **signed_headers([secret], VECTOR_ID, int(time.time()), body)}
    outcome = await sender.send("POST", receiver.url("/ok"), headers=headers, body=body, timeout=5)
    assert outcome.ok
    (seen,) = receiver.seen
    assert Webhook(secret).verify(seen.body, dict(seen.headers)) == json.loads(body)
