import pytest

from rules_engine.kraken import errors as E
from rules_engine.kraken.errors import raise_for_futures, raise_for_order_status, raise_for_spot

SPOT_CASES = [
    ("EAPI:Invalid key", E.InvalidKey),
    ("EAPI:Invalid signature", E.InvalidSignature),
    ("EAPI:Invalid nonce", E.NonceError),
    ("EGeneral:Permission denied", E.PermissionDenied),
    ("EAPI:Rate limit exceeded", E.RateLimited),
    ("EOrder:Rate limit exceeded", E.RateLimited),
    ("EGeneral:Temporary lockout", E.Lockout),
    ("EOrder:Insufficient funds", E.InsufficientFunds),
    ("EOrder:Duplicate order", E.DuplicateOrder),  # a cl_ord_id an open order already carries
    ("EGeneral:Invalid arguments", E.InvalidArguments),
    ("EGeneral:Invalid arguments:ordertype", E.InvalidArguments),
    ("EGeneral:Invalid arguments:Index unavailable", E.InvalidArguments),
    ("EOrder:Order minimum not met", E.InvalidArguments),
    ("EQuery:Unknown asset pair", E.UnknownPair),
    ("EOrder:Unknown order", E.UnknownOrder),
    ("EOrder:Orders limit exceeded", E.OrderLimitExceeded),
    ("EService:Market in cancel_only mode", E.MarketRestricted),
    ("EService:Unavailable", E.Unavailable),
    ("EService:Busy", E.Busy),
    ("EService:Deadline elapsed", E.DeadlineElapsed),
    ("EGeneral:Internal error:42", E.InternalError),
    ("EFunding:Max fee exceeded", E.AnswerError),
]


@pytest.mark.parametrize("text, cls", SPOT_CASES)
def test_spot_error_strings_map_to_one_exact_class(text, cls):
    with pytest.raises(E.KrakenError) as caught:
        raise_for_spot({"error": [text]}, "AddOrder")
    assert type(caught.value) is cls
    assert caught.value.errors == [text]
    assert caught.value.method == "AddOrder"
    assert text in str(caught.value)


def test_retry_flags_follow_the_tree():
    assert E.RateLimited().retry_safe and not E.RateLimited().ambiguous
    assert E.Unavailable().transient and E.Unavailable().ambiguous and not E.Unavailable().retry_safe
    assert E.ConnectError().retry_safe
    assert E.ReadTimeout().ambiguous and not E.ReadTimeout().retry_safe
    for cls in (E.InvalidKey, E.NonceError, E.Lockout, E.InsufficientFunds, E.UnknownPair, E.UnknownOrder):
        assert not cls().transient and not cls().retry_safe
    assert E.HTTPStatusError(502).ambiguous and E.HTTPStatusError(502).transient
    assert E.HTTPStatusError(429).retry_safe
    assert not E.HTTPStatusError(404).transient


def test_invalid_order_means_unknown_order_only_for_order_lookups():
    with pytest.raises(E.UnknownOrder):
        raise_for_spot({"error": ["EOrder:Invalid order"]}, "CancelOrder")
    with pytest.raises(E.OrderRejected) as caught:
        raise_for_spot({"error": ["EOrder:Invalid order"]}, "AddOrder")
    assert not isinstance(caught.value, E.UnknownOrder)


def test_throttled_carries_the_time_to_wait_for():
    with pytest.raises(E.RateLimited) as caught:
        raise_for_spot({"error": ["EService: Throttled: 1700000123"]}, "Balance")
    assert caught.value.retry_at == 1700000123.0


def test_success_returns_result_and_warnings_do_not_raise():
    assert raise_for_spot({"error": [], "result": {"a": "1"}}) == {"a": "1"}
    assert raise_for_spot({"error": ["WGeneral:Something"], "result": {"a": "1"}}) == {"a": "1"}


def test_malformed_spot_envelopes_are_bad_responses():
    for body in ([1, 2], {"error": "x"}, {"error": []}, "text"):
        with pytest.raises(E.BadResponse):
            raise_for_spot(body, "Balance")


@pytest.mark.parametrize(
    "error, cls",
    [
        ("authenticationError", E.AuthError),
        ("nonceBelowThreshold", E.NonceError),
        ("apiLimitExceeded", E.RateLimited),
        ("insufficientFunds", E.InsufficientFunds),
        ("invalidArgument", E.InvalidArguments),
        ("notFound", E.UnknownOrder),
        ("Unavailable", E.Unavailable),
        ("Server Error", E.InternalError),
        ("somethingNew", E.AnswerError),
    ],
)
def test_futures_error_envelope(error, cls):
    with pytest.raises(E.KrakenError) as caught:
        raise_for_futures({"result": "error", "error": error, "serverTime": "2016-02-25T09:45:53.818Z"}, "accounts")
    assert type(caught.value) is cls


def test_futures_bad_request_errors_list_is_invalid_arguments():
    body = {"status": "BAD_REQUEST", "result": "error", "errors": [{"code": 11, "message": "invalid order type"}]}
    with pytest.raises(E.InvalidArguments, match="invalid order type"):
        raise_for_futures(body, "sendorder")


def test_futures_success_is_returned_whole():
    body = {"result": "success", "tickers": [], "serverTime": "x"}
    assert raise_for_futures(body) == body


@pytest.mark.parametrize(
    "status, cls",
    [
        ("insufficientAvailableFunds", E.InsufficientFunds),
        ("invalidSize", E.InvalidArguments),
        ("marketSuspended", E.MarketRestricted),
        ("clientOrderIdAlreadyExist", E.DuplicateOrder),
        ("tooManyOrders", E.OrderLimitExceeded),
        ("iocWouldNotExecute", E.OrderRejected),
        ("notFound", E.UnknownOrder),
    ],
)
def test_futures_order_status_rejections(status, cls):
    with pytest.raises(E.KrakenError) as caught:
        raise_for_order_status({"status": status, "order_id": "x"}, "sendorder")
    assert type(caught.value) is cls
    assert not caught.value.retry_safe


def test_futures_order_status_success():
    status = {"status": "placed", "order_id": "abc"}
    assert raise_for_order_status(status) is status
