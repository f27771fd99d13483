"""Shared helpers and fixtures for the executor tests: a simulator on 127.0.0.1 (free port)
with a manual clock, Kraken clients and executors pointed at it, a state store and an audit
log in tmp_path."""

import base64
import json
import secrets
import threading

import pytest

from rules_engine.audit.log import AuditLog
from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.futures_rest import FuturesClient
from rules_engine.kraken.http import RequestsTransport
from rules_engine.kraken.nonce import NonceSource
from rules_engine.kraken.spot_rest import SpotClient
from rules_engine.execution import LiveExecutor
from rules_engine.sim import Account, SimConfig, Simulator
from rules_engine.state.store import StateStore

KEY = "executor-test-key-" + secrets.token_hex(8)
SECRET = base64.b64encode(secrets.token_bytes(64)).decode()
CREDS = Credentials(KEY, SECRET)


class ManualClock:
    """Time that moves only when told to (or when a client sleeps on it)."""

    def __init__(self, start: float = 1_790_000_000.0):
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)


class RecordingTransport:
    """The real HTTP transport, remembering each call's method and body."""

    def __init__(self, timeout=(2.0, 2.0)):
        self.inner = RequestsTransport(timeout=timeout)
        self.sent: list[tuple[str, str | None, dict]] = []

    def request(self, http_method, url, **kwargs):
        self.sent.append((kwargs["api_method"], kwargs.get("body"), dict(kwargs.get("headers") or {})))
        return self.inner.request(http_method, url, **kwargs)

    def methods(self):
        return [method for method, _, _ in self.sent]

    def close(self):
        self.inner.close()


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def sim(clock):
    config = SimConfig(
        accounts=[Account(KEY, SECRET, {"ZUSD": "10000", "XXBT": "1"}, futures_balances={"USD": "5000"})],
        prices={"XBTUSD": "60000"},
        seed=3,
        tick_interval=0,
    )
    simulator = Simulator(config, clock=clock)
    with simulator.running() as endpoints:
        simulator.test_endpoints = endpoints
        yield simulator


def spot_client(sim, clock, creds=CREDS, timeout=(2.0, 2.0), transport=None):
    return SpotClient(creds, sim.test_endpoints, nonce_source=NonceSource(), timeout=timeout, clock=clock,
                      sleep=clock.sleep, transport=transport)


def futures_client(sim, clock, creds=CREDS):
    return FuturesClient(creds, sim.test_endpoints, nonce_source=NonceSource(unit_ns=1_000_000),
                         timeout=(2.0, 2.0), clock=clock, sleep=clock.sleep)


@pytest.fixture
def live(sim, clock):
    executor = LiveExecutor(spot_client(sim, clock), futures_client(sim, clock), clock=clock)
    yield executor
    executor.close()


@pytest.fixture
def store(tmp_path, clock):
    with StateStore(tmp_path / "state" / "engine.sqlite", clock=clock) as db:
        yield db


@pytest.fixture
def audit(tmp_path, clock):
    log = AuditLog(tmp_path / "state" / "audit.jsonl", mode="test", clock=clock)
    yield log
    log.close()


def audit_records(log: AuditLog) -> list[dict]:
    return [json.loads(line) for line in log.path.read_text().splitlines()]
