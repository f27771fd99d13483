"""Base URLs of Kraken's APIs: the real exchange by default, the simulator in tests.

Clients append Kraken's documented paths to these bases unchanged
(`{spot_rest}/0/private/AddOrder`, `{futures_rest}/api/v3/sendorder`), so pointing a
client at `rules-engine sim` changes nothing but these strings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KrakenEndpoints:
    spot_rest: str = "https://api.kraken.com"
    futures_rest: str = "https://futures.kraken.com/derivatives"
    ws_v2: str = "wss://ws.kraken.com/v2"
    ws_v1: str = "wss://ws.kraken.com"
    futures_ws: str = "wss://futures.kraken.com/ws/v1"
    ws_auth_v2: str = "wss://ws-auth.kraken.com/v2"  # private WebSocket v2 (executions, balances)

    @classmethod
    def local(cls, host: str, port: int, secure: bool = False) -> KrakenEndpoints:
        """The URLs of a simulator listening on host:port (all APIs on one port; `https`
        and `wss` when it serves TLS)."""
        http, ws = (f"https://{host}:{port}", f"wss://{host}:{port}") if secure else (
            f"http://{host}:{port}", f"ws://{host}:{port}")
        return cls(
            spot_rest=http,
            futures_rest=f"{http}/derivatives",
            ws_v2=f"{ws}/v2",
            ws_v1=ws,
            futures_ws=f"{ws}/ws/v1",
            ws_auth_v2=f"{ws}/auth/v2",
        )


KRAKEN = KrakenEndpoints()
