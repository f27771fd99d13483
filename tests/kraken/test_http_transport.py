"""RequestsTransport against a tiny local HTTP server: headers, keep-alive, status mapping."""

import json
import threading
from urllib.parse import urlsplit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rules_engine.kraken import errors as E
from rules_engine.kraken.http import DEFAULT_USER_AGENT, RequestsTransport

ANSWERS = {
    "/ok": (200, "application/json", json.dumps({"error": [], "result": {"x": "1"}})),
    "/html502": (502, "text/html", "<html>bad gateway</html>"),
    "/garbage": (200, "text/plain", "not json"),
    "/envelope400": (400, "application/json", json.dumps({"result": "error", "error": "invalidArgument"})),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    seen: list[tuple[str, str, tuple[str, int]]] = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        Handler.seen.append((self.path, self.headers.get("User-Agent"), self.client_address))
        status, content_type, body = ANSWERS[urlsplit(self.path).path]  # a proxied request names the whole URL
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_user_agent_and_one_kept_alive_connection(server):
    transport = RequestsTransport(timeout=(1.0, 2.0))
    assert transport.request("GET", server + "/ok", api_method="Time") == {"error": [], "result": {"x": "1"}}
    transport.request("POST", server + "/ok", api_method="Balance", body="nonce=1")
    (_, ua1, addr1), (_, ua2, addr2) = Handler.seen
    assert ua1 == ua2 == DEFAULT_USER_AGENT
    assert addr1 == addr2  # the same client socket: keep-alive
    transport.close()


def test_status_and_body_mapping(server):
    transport = RequestsTransport(timeout=(1.0, 2.0))
    with pytest.raises(E.HTTPStatusError) as caught:
        transport.request("GET", server + "/html502", api_method="Ticker")
    assert caught.value.status == 502 and caught.value.ambiguous
    with pytest.raises(E.BadResponse):
        transport.request("GET", server + "/garbage", api_method="Ticker")
    # a non-200 answer that still carries Kraken's envelope is handed on for typed mapping
    assert transport.request("POST", server + "/envelope400", api_method="sendorder", body="")["error"] == "invalidArgument"


def test_a_proxy_from_the_environment_is_used_though_the_environment_is_read_once(server, monkeypatch):
    """The environment's proxy settings are read once per origin (requests would walk the
    whole environment on every request: a worker with hundreds of keys' variables paid for it)."""
    monkeypatch.setenv("HTTP_PROXY", server)  # the test server answers as the proxy would
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    transport = RequestsTransport(timeout=(1.0, 2.0))
    target = "http://kraken.invalid/ok"
    assert transport.request("GET", target, api_method="Time")["result"] == {"x": "1"}
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # read once: a later change is not seen
    assert transport.request("GET", target, api_method="Time")["result"] == {"x": "1"}
    assert [path for path, _, _ in Handler.seen] == [target, target]  # both went through the proxy
    transport.close()


def test_transports_sharing_an_environment_cache_read_the_environment_once_between_them(server, monkeypatch):
    """A worker's cells share one cache: the second cell's transport does not walk the
    environment again for an origin the first one read (a later change is not seen)."""
    monkeypatch.setenv("HTTP_PROXY", server)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    shared: dict = {}
    first, second = RequestsTransport(timeout=(1.0, 2.0), environment=shared), \
        RequestsTransport(timeout=(1.0, 2.0), environment=shared)
    target = "http://kraken.invalid/ok"
    assert first.request("GET", target, api_method="Time")["result"] == {"x": "1"}
    assert list(shared) == [("http", "kraken.invalid")]
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert second.request("GET", target, api_method="Time")["result"] == {"x": "1"}  # the shared settings
    assert [path for path, _, _ in Handler.seen] == [target, target]
    alone = RequestsTransport(timeout=(1.0, 0.5))  # a transport of its own reads the environment as it is now
    with pytest.raises(E.TransportError):
        alone.request("GET", target, api_method="Time")
    for transport in (first, second, alone):
        transport.close()
