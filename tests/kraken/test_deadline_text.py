"""An order's deadline is written from a timestamp without a datetime (`rfc3339_at`), exactly
as `rfc3339(datetime.fromtimestamp(t, UTC))` writes it."""

import random
from datetime import UTC, datetime

from rules_engine.kraken.params import rfc3339, rfc3339_at


def via_datetime(timestamp: float) -> str:
    return rfc3339(datetime.fromtimestamp(timestamp, UTC))


def test_the_text_is_the_datetime_route_s_on_random_and_edge_timestamps():
    rng = random.Random(5)
    stamps = [0.0, 0.0005, 0.9995, 0.9999995, 0.9999994, 1.0, 59.9999996, 86399.9999996, 951782399.9996,
              1796451891.926297, 1796451891.9999995, 1796451891.0004995, 4102444799.9999995]
    stamps += [rng.uniform(1.5e9, 2.2e9) for _ in range(20000)]
    stamps += [s + d for s in range(1796451800, 1796451900) for d in (0.0004995, 0.9994999, 0.9995, 0.9999996)]
    for stamp in stamps:
        assert rfc3339_at(stamp) == via_datetime(stamp), stamp


def test_consecutive_deadlines_in_one_second_and_across_seconds_and_days():
    base = 1796515199.998  # 23:59:59.998 on 2026-12-05
    texts = [rfc3339_at(base + n / 1000) for n in range(4)]
    assert texts == ["2026-12-05T23:59:59.998Z", "2026-12-05T23:59:59.999Z", "2026-12-06T00:00:00.000Z",
                     "2026-12-06T00:00:00.001Z"]
    assert rfc3339_at(base) == "2026-12-05T23:59:59.998Z"  # back to an earlier second
