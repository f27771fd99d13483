"""`UtcMillis` writes a time as `datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")`
does (without the zone)."""

import random
from datetime import UTC, datetime

from rules_engine.timestamps import UtcMillis


def via_datetime(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").removesuffix("+00:00")


def test_the_text_is_the_datetime_route_s_on_random_and_edge_times():
    rng = random.Random(8)
    stamps = [0.0, 0.0005, 0.9995, 0.9999995, 0.9999994, 59.9999996, 951782399.9996, 1796451891.9999995,
              4102444799.9999995, -0.5, -1.0000004]
    stamps += [rng.uniform(-1e9, 4e9) for _ in range(20000)]
    stamps += [s + d for s in range(1796451800, 1796451900) for d in (0.0004995, 0.9994999, 0.9995, 0.9999996)]
    texts = UtcMillis()
    for stamp in stamps:
        assert texts(stamp) == via_datetime(stamp), stamp


def test_two_instances_keep_their_own_second():
    now, later = UtcMillis(), UtcMillis()
    for n in range(50):  # alternating seconds 15 s apart, as log lines and order deadlines are
        t = 1796515199.990 + n / 100
        assert (now(t), later(t + 15)) == (via_datetime(t), via_datetime(t + 15))
