"""`rules-engine pairs refresh|list` against a tiny local HTTP server serving canned answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from rules_engine import cli
from rules_engine.pairs import PairRegistry

CANNED = {
    "error": [],
    "result": {
        "XXBTZUSD": {
            "altname": "XBTUSD", "wsname": "XBT/USD", "base": "XXBT", "quote": "ZUSD",
            "pair_decimals": 1, "lot_decimals": 8, "ordermin": "0.0001", "costmin": "0.5",
            "tick_size": "0.1", "status": "online",
        },
        "XETHZUSD": {
            "altname": "ETHUSD", "wsname": "ETH/USD", "base": "XETH", "quote": "ZUSD",
            "ordermin": "0.01", "status": "cancel_only",
        },
    },
}


class Server:
    """Answers GET /0/public/AssetPairs with `status` and `body`; records request paths."""

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes = json.dumps(CANNED).encode()
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                owner.paths.append(self.path)
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    running.thread.start()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()
    running.thread.join(timeout=5)


def refresh(server: Server, output: Path) -> int:
    return cli.main(["pairs", "refresh", "--url", server.url + "/", "--output", str(output), "--timeout", "5"])


def test_refresh_writes_the_snapshot(server, tmp_path, capsys):
    output = tmp_path / "data" / "asset_pairs.json"
    assert refresh(server, output) == 0
    assert server.paths == ["/0/public/AssetPairs"]
    assert capsys.readouterr().out.strip() == f"wrote 2 pairs to {output}"
    registry = PairRegistry.from_file(output)
    assert registry.resolve("BTC/USD").altname == "XBTUSD"
    assert json.loads(output.read_text()) == CANNED
    assert sorted(p.name for p in output.parent.iterdir()) == ["asset_pairs.index.json", "asset_pairs.json"]  # no temporary left


def test_refreshed_snapshot_is_used_by_validate_and_list(server, tmp_path, capsys):
    output = tmp_path / "pairs.json"
    assert refresh(server, output) == 0
    capsys.readouterr()
    assert cli.main(["pairs", "list", "--pairs", str(output)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ALTNAME", "WSNAME", "V2", "SYMBOL", "PAIR", "ID", "ORDERMIN", "STATUS"]
    assert lines[1].split() == ["ETHUSD", "ETH/USD", "ETH/USD", "XETHZUSD", "0.01", "cancel_only"]
    assert lines[2].split() == ["XBTUSD", "XBT/USD", "BTC/USD", "XXBTZUSD", "0.0001", "online"]


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, {"error": ["EService:Unavailable"]}, "Kraken answered with errors: EService:Unavailable"),
        (200, {"error": [], "result": {}}, "answered without any pairs"),
        (200, {"error": [], "result": {"X": {"wsname": "no altname"}}}, "not in Kraken's AssetPairs format"),
        (503, {"error": []}, "answered HTTP 503"),
        (200, "not json", "did not answer with JSON"),
    ],
)
def test_failed_refresh_keeps_the_old_snapshot(server, tmp_path, capsys, status, body, message):
    output = tmp_path / "pairs.json"
    output.write_text("old snapshot")
    server.status = status
    server.body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    assert refresh(server, output) == 1
    err = capsys.readouterr().err
    assert message in err and "the snapshot was not changed" in err
    assert output.read_text() == "old snapshot"
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.json"]


def test_unreachable_exchange_exits_1(tmp_path, capsys):
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]  # a port that is free once the probe closes
    output = tmp_path / "pairs.json"
    assert cli.main(["pairs", "refresh", "--url", f"http://127.0.0.1:{port}", "--output", str(output), "--timeout", "2"]) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert not output.exists()


def test_refresh_keeps_file_permissions(server, tmp_path):
    output = tmp_path / "pairs.json"
    output.write_text("{}")
    output.chmod(0o640)
    assert refresh(server, output) == 0
    assert output.stat().st_mode & 0o777 == 0o640
