"""A rule's state as `rules-engine status` and the status page name it, from its saved state."""

from __future__ import annotations

from rules_engine.core.model import MaxFires, Rule
from rules_engine.service.status_report import fires_window, rule_state

RULE = Rule(id="r", triggers=(), actions=())


def test_rule_states() -> None:
    assert rule_state(RULE, None, False, 100.0) == ("armed", "")
    assert rule_state(Rule(id="off", triggers=(), actions=(), enabled=False), None, True, 0)[0] == "disabled"
    assert rule_state(RULE, {}, True, 0) == ("error", "its last evaluation or action failed")  # also a refused order
    assert rule_state(RULE, {"run": {"next_action": 0}}, False, 0)[0] == "running"
    assert rule_state(RULE, {"run": {"waiting": "r#1/0"}}, False, 0) == ("waiting", "waiting for r#1/0")
    assert rule_state(RULE, {"pending": {"kind": "hold", "until": 130.0}}, False, 100.0) == (
        "holding", "for: hold, 30 s left")
    assert rule_state(RULE, {"pending": {"kind": "wait", "waiting": "balance of ZUSD"}}, False, 0) == (
        "waiting", "waiting for balance of ZUSD")
    assert rule_state(RULE, {"cooldown_until": 160.0}, False, 100.0) == ("cooling_down", "60 s left")
    assert rule_state(RULE, {"cooldown_until": 60.0}, False, 100.0) == ("armed", "")


def test_fires_against_max_fires_or_in_all() -> None:
    limited = Rule(id="r", triggers=(), actions=(), max_fires=MaxFires(3, 3600.0))
    saved = {"fire_times": [10.0, 3000.0, 3500.0]}
    assert fires_window(limited, saved, 7, 4000.0) == {"count": 2, "max": 3, "window": 3600.0}
    assert fires_window(RULE, saved, 7, 4000.0) == {"count": 7, "max": None, "window": None}


def test_an_open_order_no_rule_placed_is_shown_as_such_in_text_and_page() -> None:
    """A close order Kraken made, or one the account read found, has no rule: never "None"."""
    from rules_engine.commands.status import render_text
    from rules_engine.service.status_page import render_page

    order = {"rule_id": None, "pair": "XBTUSD", "status": "open", "volume": "0.01", "price": "73657.6",
             "filled": "0", "txids": ["OLJ4GK-CYPDJ-RJEZXQ"]}
    doc = {"time": 1.0, "health": "healthy", "mode": "dry-run", "running": True, "rules": [], "feeds": {},
           "orders": [order], "risk": {}, "kill_switch": {"engaged": False}}
    text = render_text(doc)
    assert "  (no rule): XBTUSD open volume=0.01" in text and "None" not in text.split("open orders:")[1]
    page = render_page(doc, kill_enabled=True)
    assert "<td>(no rule)</td><td>XBTUSD</td>" in page


def test_status_text_lists_the_recent_signals_the_page_shows() -> None:
    """`rules-engine status` prints what the page shows: recent signals, accepted and rejected with the reason."""
    from rules_engine.commands.status import render_text

    signals = [{"time": 100.0, "accepted": False, "source": "tradingview", "signal_id": "sig-7", "status": 401,
                "code": "wrong_passphrase", "reason": "the passphrase does not match", "seq": 39},
               {"time": 99.0, "accepted": True, "source": "tradingview", "signal_id": "a1", "seq": 30}]
    doc = {"time": 102.0, "health": "ok", "mode": "dry-run", "running": True, "rules": [], "feeds": {},
           "orders": [], "risk": {}, "kill_switch": {"engaged": False}, "signals": signals}
    lines = render_text(doc).splitlines()
    start = lines.index("recent signals: 2")
    assert lines[start + 1].split() == ["1970-01-01", "00:01:40", "(2s", "ago)", "tradingview", "rejected", "sig-7",
                                        "401", "wrong_passphrase:", "the", "passphrase", "does", "not", "match"]
    assert lines[start + 2].split() == ["1970-01-01", "00:01:39", "(3s", "ago)", "tradingview", "accepted", "a1"]
    assert "recent signals: none" in render_text({**doc, "signals": []})
    assert "recent signals" not in render_text({k: v for k, v in doc.items() if k != "signals"})


def test_the_refreshed_part_of_the_page_carries_the_health_the_header_shows() -> None:
    """The header's health badge is drawn once; the 2 s refresh brings the current health with it."""
    from rules_engine.service.status_page import render_live, render_page

    doc = {"time": 1.0, "health": "degraded", "mode": "dry-run", "running": True, "rules": [], "feeds": {},
           "orders": [], "risk": {}, "kill_switch": {"engaged": False}, "readiness": {"status": "degraded"}}
    assert '<span id="live-health" class="badge degraded">degraded</span>' in render_live(doc)
    assert '<span id="health" class="badge degraded">degraded</span>' in render_page(doc, kill_enabled=False)
