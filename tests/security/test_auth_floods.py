"""Floods of bad credentials cost the gateway a bounded number of key lookups: each peer has a budget
of failed authentications, spent before any lookup, and a rejected key is remembered for a while.
Good credentials spend nothing, and a revocation still applies at once. Against a real gateway on
port 0 whose key store (the real one) counts the lookups that reach its database."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from hivemesh.gateway.app import key_store
from hivemesh.gateway.config import AuthMode, GatewayConfig
from hivemesh.gateway.failures import REASON, peer_key
from hivemesh.gateway.keys import ApiKeyStore, KeyCheck, parse
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.mesh.config import Settings
from hivemesh.mesh.sql import make_engine, sqlite_url
from hivemesh.mesh.status import StatusDetails, details_of
from tests.gateway.harness import Issuer, ServedGateway, api_key, bearer, serve_gateway

# Slow enough that a peer that has spent its budget stays over it for the rest of a test...
SLOW = 0.2
# ...and fast enough that waiting as long as RetryInfo says is short.
FAST = 20.0
BURST = 10
CONCURRENCY = 5

Metadata = tuple[tuple[str, str], ...]


class CountingKeyStore(ApiKeyStore):
    """The gateway's key store, counting the checks that reach its database."""

    lookups = 0

    async def check(self, token: str) -> KeyCheck:
        if parse(token) is not None:  # a malformed key is refused without a query
            self.lookups += 1
        return await super().check(token)


@dataclass
class Flood:
    outcomes: Counter[str]
    seconds: float
    rate: float

    def bound(self) -> float:
        """Failures the budget lets through in that time, calls admitted together included."""
        return BURST + self.rate * self.seconds + CONCURRENCY


def config(rate: float, *, jwks: Path | None = None) -> GatewayConfig:
    return GatewayConfig(
        auth=AuthMode.REQUIRED,
        jwt_jwks=str(jwks) if jwks is not None else None,
        jwt_issuer="test-idp",
        rate_limit_per_s=0.0,
        auth_failure_rate_per_s=rate,
        auth_failure_burst=BURST,
    )


def counting_store(settings: Settings) -> CountingKeyStore:
    return CountingKeyStore(make_engine(sqlite_url(settings.data_dir / "gateway.db")))


async def keys_for(settings: Settings, *tenants: str, revoked: bool = False) -> list[str]:
    store = key_store(settings)
    await store.start()
    try:
        created = [await store.create(tenant) for tenant in tenants]
        if revoked:
            for key, _ in created:
                assert await store.revoke(key.key_id)
        return [text for _, text in created]
    finally:
        await store.stop(0)


def made_up_key() -> str:
    return f"hmk_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


def status_of(exc: grpc.aio.AioRpcError) -> StatusDetails:
    status = details_of(exc)
    if status.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # Every refusal says when to come back.
        assert status.retry_delay_s is not None
        assert status.retry_delay_s > 0
    return status


async def list_tasks(gw: ServedGateway, metadata: Metadata = ()) -> str:
    """``OK``, or the code and reason of the failure."""
    try:
        await gw.stub.ListTasks(pb.ListTasksRequest(), metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        status = status_of(exc)
        return f"{status.code.name} {status.reason}"
    return "OK"


async def refusal(gw: ServedGateway, metadata: Metadata) -> StatusDetails:
    try:
        await gw.stub.ListTasks(pb.ListTasksRequest(), metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        return status_of(exc)
    raise AssertionError("the call succeeded but was expected to fail")


async def flood(gw: ServedGateway, calls: int, credentials: Callable[[], Metadata], rate: float) -> Flood:
    """``calls`` calls, ``CONCURRENCY`` at a time, each with the credentials ``credentials()`` makes."""
    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    for _ in range(calls // CONCURRENCY):
        outcomes.update(await asyncio.gather(*(list_tasks(gw, credentials()) for _ in range(CONCURRENCY))))
    return Flood(outcomes, time.monotonic() - started, rate)


async def test_a_flood_of_bad_keys_is_refused_before_the_database(settings: Settings) -> None:
    acme, globex = await keys_for(settings, "acme", "globex")
    store = counting_store(settings)
    async with serve_gateway(settings, config(SLOW), store) as gw:
        assert await list_tasks(gw, api_key(acme)) == "OK"
        before = store.lookups

        result = await flood(gw, 300, lambda: api_key(made_up_key()), SLOW)

        looked_up = store.lookups - before
        assert result.outcomes["UNAUTHENTICATED API_KEY_INVALID"] == looked_up
        assert BURST <= looked_up <= result.bound()
        assert result.outcomes[f"RESOURCE_EXHAUSTED {REASON}"] == 300 - looked_up

        # The peer is over its budget: a key this gateway has not accepted yet waits too...
        status = await refusal(gw, api_key(globex))
        assert status.reason == REASON
        assert status.metadata == {"peer": "127.0.0.1", "limit_per_s": f"{SLOW:g}"}
        # ...but one it accepted lately still works from the same peer, at once, and is looked up
        # on every call, so that its revocation applies on the next one.
        lookups = store.lookups
        assert await list_tasks(gw, api_key(acme)) == "OK"
        assert await list_tasks(gw, api_key(acme)) == "OK"
        assert store.lookups == lookups + 2
        assert (await refusal(gw, api_key(made_up_key()))).reason == REASON
        listed = {k.tenant_id: k for k in await store.list()}
        assert await store.revoke(listed["acme"].key_id)
        assert await list_tasks(gw, api_key(acme)) == "UNAUTHENTICATED API_KEY_REVOKED"


async def test_calls_without_credentials_are_throttled_the_same_way(settings: Settings) -> None:
    (acme,) = await keys_for(settings, "acme")
    store = counting_store(settings)
    async with serve_gateway(settings, config(FAST), store) as gw:
        missing = await flood(gw, 200, tuple, FAST)
        assert BURST <= missing.outcomes["UNAUTHENTICATED CREDENTIALS_MISSING"] <= missing.bound()
        assert missing.outcomes[f"RESOURCE_EXHAUSTED {REASON}"] >= 200 - missing.bound()
        assert store.lookups == 0

        # Malformed bearer tokens spend the same budget: failures, then a refusal; after as long as
        # RetryInfo says, a good key this gateway has never seen is accepted.
        for _ in range(100):
            status = await refusal(gw, bearer("not-a-jwt"))
            if status.reason == REASON:
                break
            assert status.reason == "TOKEN_NOT_ACCEPTED"
        assert status.reason == REASON
        assert status.retry_delay_s is not None
        await asyncio.sleep(status.retry_delay_s)
        assert await list_tasks(gw, api_key(acme)) == "OK"


async def test_undecodable_garbage_is_throttled_like_a_call_without_credentials(settings: Settings) -> None:
    (acme,) = await keys_for(settings, "acme")
    async with serve_gateway(settings, config(SLOW)) as gw:
        garbage = gw.channel.unary_unary(
            "/hivemesh.gateway.v1.GatewayService/GetTask", request_serializer=None, response_deserializer=None
        )
        outcomes: Counter[str] = Counter()
        for _ in range(3 * BURST):
            try:
                await garbage(bytes.fromhex("0a02fffe"))  # task_id: invalid UTF-8
            except grpc.aio.AioRpcError as exc:
                status = status_of(exc)
                outcomes[f"{status.code.name} {status.reason}"] += 1
        # The budget's burst is answered (the request's own error), then the peer is refused.
        assert BURST <= outcomes["INVALID_ARGUMENT UNDECODABLE_REQUEST"] <= BURST + 1
        assert outcomes[f"RESOURCE_EXHAUSTED {REASON}"] >= 2 * BURST - 1
        # The same peer's calls without credentials are refused from the same budget.
        assert await list_tasks(gw) == f"RESOURCE_EXHAUSTED {REASON}"
        # A key this gateway has never seen waits as long as RetryInfo says, like after any flood.
        status = await refusal(gw, ())
        assert status.retry_delay_s is not None
        await asyncio.sleep(status.retry_delay_s)
        assert await list_tasks(gw, api_key(acme)) == "OK"


async def test_a_rejected_key_is_looked_up_once(settings: Settings) -> None:
    (revoked,) = await keys_for(settings, "acme", revoked=True)
    unknown = made_up_key()
    store = counting_store(settings)
    # No failure budget here: only the memory of rejected keys saves the lookups.
    async with serve_gateway(settings, config(0.0), store) as gw:
        for _ in range(40):
            assert await list_tasks(gw, api_key(unknown)) == "UNAUTHENTICATED API_KEY_INVALID"
            assert await list_tasks(gw, api_key(revoked)) == "UNAUTHENTICATED API_KEY_REVOKED"
        assert store.lookups == 2


async def test_good_credentials_never_spend_the_budget(settings: Settings, tmp_path: Path) -> None:
    issuer = Issuer.create(tmp_path)
    (acme,) = await keys_for(settings, "acme")
    async with serve_gateway(settings, config(SLOW, jwks=issuer.jwks_path)) as gw:
        token = issuer.token("initech")
        # Many times the burst, all at once: a key never seen before, and a JWT.
        calls = [list_tasks(gw, api_key(acme)) for _ in range(3 * BURST)]
        calls += [list_tasks(gw, bearer(token)) for _ in range(3 * BURST)]
        assert set(await asyncio.gather(*calls)) == {"OK"}
        # The budget is still whole: a burst of failures is answered as failures.
        failures = [list_tasks(gw, api_key(made_up_key())) for _ in range(BURST)]
        assert set(await asyncio.gather(*failures)) == {"UNAUTHENTICATED API_KEY_INVALID"}


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("ipv4:203.0.113.7:51234", "203.0.113.7"),
        ("ipv6:[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"),
        ("ipv6:%5B2001:db8:1:2:ffff::1%5D:443", "2001:db8:1:2::/64"),
        ("ipv6:[::ffff:198.51.100.1]:80", "198.51.100.1"),
        ("unix:/run/hivemesh.sock", "unix"),
        ("inproc:localhost:0", "inproc"),
    ],
)
def test_a_peer_is_known_by_its_address(peer: str, key: str) -> None:
    assert peer_key(peer) == key
