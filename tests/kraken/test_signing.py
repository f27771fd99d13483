import base64

from rules_engine.kraken.signing import futures_signature, spot_signature

OFFICIAL_SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="


def test_official_spot_vector():
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert (
        spot_signature(OFFICIAL_SECRET, "/0/private/AddOrder", 1616492376594, body)
        == "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    )


def test_spot_json_body_vector():
    body = '{"nonce": "1616492376594", "ordertype": "limit", "pair": "XBTUSD", "price": 37500, "type": "buy", "volume": 1.25}'
    assert (
        spot_signature(OFFICIAL_SECRET, "/0/private/AddOrder", "1616492376594", body)
        == "xojekerxRL59CSvi3027oZ1+nMQF0TgqD5QE569qR8tgSJ4tAhoVYVGhSEciXkufsn6foHHVi0N3Utiarvg74w=="
    )


def test_futures_vector_with_and_without_derivatives_prefix():
    secret = base64.b64encode(b"python-kraken-sdk unit-test secret value").decode()
    expected = "Txi+gJVXe3EN1brXYQ46FuV6UVtEVSKhc6dYMhPb7a/HXZLGvO6m9UUg+KVKqhLxrbllOPI7qRkHYmPfJZZSGA=="
    data = "orderType=lmt&symbol=PI_XBTUSD"
    assert futures_signature(secret, "/derivatives/api/v3/sendorder", "1616492376594", data) == expected
    assert futures_signature(secret, "/api/v3/sendorder", "1616492376594", data) == expected
