"""Fixtures for the simulator tests: a simulator on a free port with a manual clock."""

import pytest
from sim_support import FuturesClient, ManualClock, SpotClient, make_sim


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def sim(clock):
    return make_sim(clock)


@pytest.fixture
def endpoints(sim):
    with sim.running() as eps:
        yield eps


@pytest.fixture
def spot(endpoints):
    return SpotClient(endpoints.spot_rest)


@pytest.fixture
def futures(endpoints):
    return FuturesClient(endpoints.futures_rest)
