"""Least outstanding requests with outlier ejection, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest

from hivemesh.mesh.balancer import Balancer, EjectionPolicy, Endpoint


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def endpoints(*weights: float) -> list[Endpoint[str]]:
    return [Endpoint(f"e{i}", f"target-{i}", weight) for i, weight in enumerate(weights)]


def test_least_loaded_counts_outstanding_calls_per_weight() -> None:
    a, b = endpoints(1, 2)
    balancer = Balancer([a, b])
    assert balancer.least_loaded() is b  # equal load: the heavier
    with balancer.track(b), balancer.track(b), balancer.track(b):
        assert b.outstanding == 3
        assert balancer.least_loaded() is a  # 0/1 < 3/2
        with balancer.track(a), balancer.track(a):
            assert balancer.least_loaded() is b  # 3/2 < 2/1
    assert (a.outstanding, b.outstanding) == (0, 0)


def test_failures_in_a_row_eject_for_a_doubling_time_and_the_endpoint_comes_back_half_open() -> None:
    clock = Clock()
    a, b = endpoints(1, 1)
    balancer = Balancer([a, b], EjectionPolicy(consecutive_failures=2, base_ejection_s=5), clock=clock)
    balancer.failed(a)
    assert balancer.available() == [a, b]
    balancer.succeeded(a)  # a success in between: the count starts again
    balancer.failed(a)
    assert not a.ejected
    balancer.failed(a)
    assert a.ejected
    assert balancer.available() == [b]
    assert a.ejected_until == clock.now + 5
    clock.now += 5
    assert balancer.available() == [a, b]  # no probe: the next call decides
    balancer.failed(a)
    balancer.failed(a)
    assert a.ejected_until == clock.now + 10  # second ejection in a row: twice as long
    assert balancer.by_preference() == [b, a]


def test_a_hold_ejects_at_once_for_exactly_that_long() -> None:
    clock = Clock()
    (a,) = endpoints(1)
    balancer = Balancer(
        [a], EjectionPolicy(consecutive_failures=5, base_ejection_s=5, max_ejection_s=60), clock=clock
    )
    balancer.failed(a, hold_s=30)
    assert a.held
    assert a.ejected_until == clock.now + 30
    balancer.succeeded(a)
    balancer.failed(a, hold_s=3600)
    assert a.ejected_until == clock.now + 60  # capped


async def test_an_ejected_endpoint_is_probed_and_readmitted_only_when_the_probe_answers() -> None:
    clock = Clock()
    answers = {"target-0": False}
    probed: list[str] = []

    async def probe(target: str) -> None:
        probed.append(target)
        if not answers[target]:
            raise ConnectionError("refused")

    (a,) = endpoints(1)
    balancer = Balancer([a], EjectionPolicy(base_ejection_s=1), probe=probe, clock=clock)
    balancer.failed(a)
    clock.now += 1
    assert balancer.available() == []  # the probe runs; the endpoint stays out meanwhile
    await asyncio.sleep(0.01)
    assert probed == ["target-0"]
    assert a.ejected
    assert a.ejected_until == clock.now + 2
    answers["target-0"] = True
    clock.now += 2
    assert balancer.available() == []
    await asyncio.sleep(0.01)
    assert balancer.available() == [a]
    await balancer.close()


def test_a_balancer_needs_an_endpoint() -> None:
    with pytest.raises(ValueError, match="at least one endpoint"):
        Balancer([])
