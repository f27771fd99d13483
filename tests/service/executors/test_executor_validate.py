"""ValidateExecutor against the simulator: signed AddOrder with validate=true, nothing placed."""

import base64
from decimal import Decimal as D
from types import SimpleNamespace
from urllib.parse import parse_qs

from executor_fixtures import CREDS, KEY, RecordingTransport, spot_client
from executor_fixtures import clock, sim  # noqa: F401  (pytest fixtures)

from rules_engine.core import intents as it
from rules_engine.kraken.credentials import Credentials
from rules_engine.execution import ValidateExecutor


def order(**kw) -> it.PlaceOrder:
    fields = dict(pair="XBTUSD", side="buy", ordertype="limit", volume=D("0.01"), price=D("50000"))
    fields.update(kw)
    return it.PlaceOrder(intent_id="r#1/0", rule_id="r", decision_id="r#1", cl_ord_id="val-1", **fields)


def validator(sim, clock, creds=CREDS):
    transport = RecordingTransport()
    return ValidateExecutor(spot_client(sim, clock, creds=creds, transport=transport)), transport


def test_add_order_is_sent_signed_with_validate_true_and_nothing_rests(sim, clock):
    executor, transport = validator(sim, clock)
    report = executor.execute(order(), clock())
    assert report.result.ok, report.result
    assert report.result.data["validated"] is True and "txid" not in report.result.data
    assert "buy 0.01" in report.result.data["descr"]["order"]
    ((method, body, headers),) = transport.sent
    form = parse_qs(body)
    assert method == "AddOrder" and form["validate"] == ["true"] and form["cl_ord_id"] == ["val-1"]
    assert headers["API-Key"] == KEY and headers["API-Sign"]  # signed; the simulator checked it
    assert report.request["params"]["validate"] is True
    assert sim.exchange.open_orders(KEY) == []


def test_a_wrong_signature_is_refused_so_a_success_proves_a_valid_one(sim, clock):
    wrong = Credentials(KEY, base64.b64encode(b"not the secret of this key").decode())
    executor, _ = validator(sim, clock, creds=wrong)
    report = executor.execute(order(), clock())
    assert not report.result.ok and report.result.data["error_class"] == "InvalidSignature"


def test_kraken_refusals_come_back_as_results(sim, clock):
    executor, _ = validator(sim, clock)
    tiny = executor.execute(order(volume=D("0.000001")), clock())
    assert not tiny.result.ok and tiny.result.error == "EOrder:Order minimum not met"
    assert tiny.result.data["error_class"] == "InvalidArguments"


def test_cancels_and_dead_man_switch_are_not_sent(sim, clock):
    executor, transport = validator(sim, clock)
    intents = [
        it.CancelOrder(intent_id="c", rule_id="r", decision_id="r#1", cl_ord_ids=("x",)),
        it.CancelAll(intent_id="a", rule_id="r", decision_id="r#1"),
        it.DeadManSwitch(intent_id="d", rule_id=None, decision_id=None, timeout=60),
        it.FuturesSendOrder(intent_id="f", rule_id="r", decision_id="r#1", cli_ord_id="f1", symbol="PF_XBTUSD",
                            side="buy", order_type="mkt", size=D("1")),
    ]
    for intent in intents:
        report = executor.execute(intent, clock())
        assert report.result.ok and report.result.data["would_send"] is True
        assert report.request is not None and report.response["would_send"] is True
    assert transport.sent == []
    assert sim.exchange.dead_man_trigger(KEY) is None


def test_balance_is_read_for_real(sim, clock):
    executor, transport = validator(sim, clock)
    report = executor.execute(it.ReadBalance(intent_id="b", rule_id="r", decision_id="r#1"), clock())
    assert report.result.ok and D(report.result.data["balances"]["ZUSD"]) == D("10000")
    assert transport.methods() == ["Balance"]


def test_without_credentials_balance_and_orders_are_errors(sim, clock):
    executor, transport = validator(sim, clock, creds=None)
    report = executor.execute(it.ReadBalance(intent_id="b", rule_id="r", decision_id="r#1"), clock())
    assert not report.result.ok and report.result.data["error_class"] == "AuthError"
    assert not executor.execute(order(), clock()).result.ok
    assert transport.sent == []


def test_reconcile_reports_nothing_placed(sim, clock):
    executor, _ = validator(sim, clock)
    row = SimpleNamespace(cl_ord_id="val-1", intent=order().to_dict(), updated_at=clock())
    report = executor.reconcile(row, clock())
    assert not report.result.ok and report.result.data["error_class"] == "OrderNotPlaced"
