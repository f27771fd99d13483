"""A form body is exactly what `urllib.parse.urlencode` writes, the texts that need no
quoting (numbers, ids, words) included: the body is both signed and sent."""

import random
import string
from urllib.parse import urlencode

from rules_engine.kraken.params import encode_fields, form_body


def test_every_text_is_encoded_as_urlencode_encodes_it():
    rng = random.Random(3)
    alphabet = string.printable + "é€\x00\u2028"
    texts = ["", "abc", "A-Z_0.9~", "2026-12-05T06:25:06.927Z", "a b", "x+y", "1000", "0.0001", "a\n",
             "2c13a8cd-3f1f-5a04-a7a4-75733ba7dcc6", "close[price]", "100%", "a&b=c"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(5000)]
    for text in texts:
        assert encode_fields([("k", text)]) == urlencode([("k", text)]), repr(text)


def test_an_order_body_is_the_urlencoded_sorted_fields():
    params = {"volume": "0.0001", "pair": "XBTUSD", "nonce": 1796451891927000, "ordertype": "limit",
              "deadline": "2026-12-05T06:25:06.927Z", "close": {"ordertype": "stop-loss", "price": "-5%"}}
    assert form_body(params) == urlencode([
        ("close[ordertype]", "stop-loss"), ("close[price]", "-5%"), ("deadline", "2026-12-05T06:25:06.927Z"),
        ("nonce", "1796451891927000"), ("ordertype", "limit"), ("pair", "XBTUSD"), ("volume", "0.0001")])
