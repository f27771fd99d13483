"""The service's hot-path histogram renders as a prometheus_client Histogram does."""

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from rules_engine.service.metrics import LATENCY_BUCKETS, LoopHistogram


def _samples(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if line.startswith("lat_seconds_") and "_created" not in line]


def test_buckets_count_and_sum_match_a_prometheus_histogram() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = LoopHistogram("lat_seconds", "latency", LATENCY_BUCKETS, ours)
    reference = Histogram("lat_seconds", "latency", buckets=LATENCY_BUCKETS, registry=theirs)
    for amount in (0.00003, 0.00005, 0.0001, 0.0003, 0.004, 0.004, 0.25, 1.0, 7.5):  # on bounds, between, above
        fast.observe(amount)
        reference.observe(amount)
    assert _samples(ours) == _samples(theirs)
    assert 'lat_seconds_bucket{le="5e-05"} 2.0' in _samples(ours)
    assert 'lat_seconds_bucket{le="+Inf"} 9.0' in _samples(ours)
