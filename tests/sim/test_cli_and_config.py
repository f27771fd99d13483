"""`rules-engine sim` as a process, the config file, and use inside a running event loop."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import websockets
from sim_support import SECRET, SpotClient, make_sim

from rules_engine.sim import Account, SimConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


def start_cli(*args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rules_engine", "sim", "--port", "0", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.strip() == "rules-engine sim: ready":
            break
    return process, "".join(lines)


def stop_cli(process):
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    return process.returncode, out, err


def test_cli_generates_a_key_serves_and_stops_cleanly():
    process, banner = start_cli("--seed", "1", "--balance", "ZUSD=500", "--tick-interval", "0")
    try:
        base = re.search(r"spot REST\s+(\S+)", banner).group(1)
        key = re.search(r"API key (\S+)", banner).group(1)
        secret = re.search(r"API secret\s+(\S+)", banner).group(1)
        client = SpotClient(base, key, secret)
        assert client.ok("Balance") == {"ZUSD": "500.0000"}
        assert requests.get(base + "/0/public/Ticker?pair=XBTUSD", timeout=5).json()["result"]["XXBTZUSD"]["c"][0] == "60000.00000"
    finally:
        code, out, err = stop_cli(process)
    assert code == 0 and "stopped" in out, err


def test_cli_with_a_config_file_and_a_given_key(tmp_path):
    config = tmp_path / "sim.yaml"
    config.write_text(
        "seed: 4\ntick_interval: 0\nprices: {XBTUSD: '42000'}\n"
        f"accounts:\n  - api_key: file-key\n    secret: '{SECRET}'\n    balances: {{XBT: '2'}}\n"
    )
    process, banner = start_cli("--config", str(config), "--api-key", "cli-key", "--api-secret", SECRET,
                                "--balance", "USD=7")
    try:
        assert SECRET not in banner  # a secret the user gave is never printed
        base = re.search(r"spot REST\s+(\S+)", banner).group(1)
        assert SpotClient(base, "file-key", SECRET).ok("Balance") == {"XXBT": "2.0000000000"}
        assert SpotClient(base, "cli-key", SECRET).ok("Balance") == {"ZUSD": "7.0000"}
        assert SpotClient(base, "cli-key", SECRET).public("Ticker", pair="XBTUSD")["result"]["XXBTZUSD"]["c"][0] == "42000.00000"
    finally:
        assert stop_cli(process)[0] == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--api-key", "k"], "give --api-key and --api-secret together"),
        (["--api-key", "k", "--api-secret", "not base64!"], "not valid base64"),
        (["--price", "NOPE=1"], "unknown pair 'NOPE'"),
        (["--speed", "0"], "speed must be greater than 0"),
    ],
)
def test_cli_usage_errors(args, message):
    result = subprocess.run([sys.executable, "-m", "rules_engine", "sim", "--port", "0", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and message in result.stderr
    assert "not base64!" not in result.stderr


def test_config_file_errors_are_clear(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seeed: 1\n")
    with pytest.raises(ValueError, match=r"unknown key 'seeed' \(did you mean 'seed'\?\)"):
        load_config(path)
    path.write_text(f"accounts:\n  - api_key: k\n    secret: '{SECRET}'\n    tier: gold\n")
    with pytest.raises(ValueError, match=r"accounts\[0\]: .*unknown tier 'gold'"):
        load_config(path)
    path.write_text("accounts:\n  - api_key: k\n    secret: 'c2VjcmV0'\n    balances: {ZUSD: lots}\n")
    with pytest.raises(ValueError, match="'lots' is not a number"):
        load_config(path)
    path.write_text("replay: XBTUSD_1.csv\nspeed: 60\n")
    assert load_config(path).replay == [str(tmp_path / "XBTUSD_1.csv")]


def test_account_repr_hides_the_secret_and_futures_collateral_defaults_to_spot_usd_and_xbt():
    account = Account("k", SECRET, {"ZUSD": "100", "XBT": "0.5", "ETH": "3"})
    assert SECRET not in repr(account) and SECRET not in repr(SimConfig(accounts=[account]))
    assert {k: str(v) for k, v in account.futures_collateral().items()} == {"USD": "100", "XBT": "0.5"}
    fresh = Account.generate({"ZUSD": "1"})
    assert len(fresh.api_key) == 56 and len(fresh.secret) == 88


def test_async_start_and_stop_inside_a_running_loop(clock):
    sim = make_sim(clock)

    async def scenario():
        endpoints = await sim.start()
        try:
            async with websockets.connect(endpoints.ws_v2) as ws:
                await ws.recv()
                await ws.send(json.dumps({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}}))
                await ws.recv()
                await ws.recv()
                sim.set_price("XBTUSD", "61000")  # on the loop's own thread
                while True:
                    frame = json.loads(await ws.recv())
                    if frame.get("type") == "update":
                        return frame["data"][0]["last"]
        finally:
            await sim.stop()

    assert asyncio.run(scenario()) == 61000.0
    assert sim.endpoints is None


def test_cli_tls_serves_https_and_wss_with_a_certificate_clients_can_trust(tmp_path):
    import ssl

    process, banner = start_cli("--tls", "--tls-dir", str(tmp_path / "tls"), "--tick-interval", "0")
    try:
        base = re.search(r"spot REST\s+(\S+)", banner).group(1)
        ws_v2 = re.search(r"WS v2\s+(\S+)", banner).group(1)
        cert = re.search(r"self-signed certificate (\S+)", banner).group(1)
        assert base.startswith("https://127.0.0.1:") and ws_v2.startswith("wss://")
        assert cert == str(tmp_path / "tls" / "cert.pem") and (tmp_path / "tls" / "key.pem").stat().st_mode & 0o077 == 0
        assert f"SSL_CERT_FILE={cert}" in banner
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(base + "/0/public/Time", timeout=5)
        assert requests.get(base + "/0/public/Time", timeout=5, verify=cert).json()["error"] == []

        async def first_frame():
            async with websockets.connect(ws_v2, ssl=ssl.create_default_context(cafile=cert)) as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), 5))

        assert asyncio.run(first_frame())["channel"] == "status"
    finally:
        code, out, err = stop_cli(process)
    assert code == 0, err
