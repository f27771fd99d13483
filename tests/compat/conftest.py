"""The compatibility suite: unmodified third-party Kraken clients (ccxt, ccxt.pro and
python-kraken-sdk) pointed at the simulator, with only their base URLs changed (and, over
TLS, told to trust the simulator's self-signed certificate the way each documents)."""

import os

import pytest
from compat_support import make_sim

from rules_engine.sim.tls import self_signed


@pytest.fixture(scope="module")
def sim():
    return make_sim()


@pytest.fixture(scope="module")
def endpoints(sim):
    with sim.running() as eps:
        yield eps


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_sim():
    return make_sim()


@pytest.fixture(scope="module")
def tls_endpoints(tls_sim, certificate):
    """The simulator over https/wss; `SSL_CERT_FILE` and `REQUESTS_CA_BUNDLE` name its
    certificate while it runs (how Python's ssl module and requests are told to trust one)."""
    saved = {name: os.environ.get(name) for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")}
    os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = str(certificate.cert_path)
    try:
        with tls_sim.running(ssl_context=certificate.server_context()) as eps:
            yield eps
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
