"""`deploy/prometheus-alerts.yaml` is a rule file `promtool check rules` accepts (its format
checked here: groups with unique names, alerting rules with alert/expr/for/labels/annotations
of the right types, durations in Prometheus' syntax, balanced expressions), and every
`rules_engine_*` metric it names is one the engine exports, by the name it exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rules_engine.service.metrics import ServiceMetrics

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus-alerts.yaml"
DURATION = re.compile(r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$")
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


def _exported_names() -> set[str]:
    """Every sample name a scrape of a service with all labels set would show."""
    metrics = ServiceMetrics()
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


def test_alert_file_has_the_format_promtool_checks() -> None:
    data = yaml.safe_load(ALERTS.read_text())
    assert set(data) == {"groups"} and data["groups"]
    group_names = [group["name"] for group in data["groups"]]
    assert len(group_names) == len(set(group_names))
    for group in data["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        alerts = [rule["alert"] for rule in group["rules"]]
        assert len(alerts) == len(set(alerts))
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS and {"alert", "expr"} <= set(rule), rule
            assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert rule["expr"].count("(") == rule["expr"].count(")")
            assert rule["expr"].count("{") == rule["expr"].count("}")
            assert rule["expr"].count("[") == rule["expr"].count("]")
            if "for" in rule:
                assert DURATION.match(str(rule["for"])), rule["for"]
            for key in ("labels", "annotations"):
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in rule.get(key, {}).items())
            assert rule["labels"]["severity"] in ("critical", "warning")
            for window in re.findall(r"\[([^\]]+)\]", rule["expr"]):
                assert DURATION.match(window), window


def _worker_names() -> set[str]:
    """The metrics a worker (`rules-engine worker`) adds to its cells' (`service.worker`)."""
    from pathlib import Path as _Path

    from rules_engine.config import parse_config
    from rules_engine.service.worker import Worker
    from rules_engine.service.worker_config import CellSpec, WorkerConfig

    config = parse_config({"store": {"url": "postgresql://engine@db/rules", "key": "k1", "standby": True,
                                     "exclusive": True}}, "<test>")
    worker = Worker(WorkerConfig("<test>", "127.0.0.1", 0, (CellSpec("k1", config, (), _Path("state")),)))
    return {line.split("{")[0].split(" ")[0] for line in worker.render_metrics().decode().splitlines()
            if line.startswith("rules_engine_")}


def test_every_metric_the_alerts_name_is_exported() -> None:
    exported = _exported_names() | _worker_names() | {
        # scrape-time gauges (service.visibility._LiveGauges), present once a service runs
        "rules_engine_ready", "rules_engine_readiness_problem", "rules_engine_feed_stale",
        "rules_engine_feed_last_message_age_seconds", "rules_engine_feed_tick_age_seconds",
    }
    named = set(re.findall(r"\brules_engine_[a-z_]+", ALERTS.read_text()))
    assert named and named <= exported, named - exported


def test_metrics_follow_prometheus_naming_and_have_no_created_series() -> None:
    metrics = ServiceMetrics()
    metrics.errors.labels("rule", "r1").inc()
    text = metrics.render().decode()
    assert "_created" not in text
    assert 'rules_engine_errors_total{rule="r1",where="rule"} 1.0' in text
    for family in metrics.registry.collect():
        assert family.name.startswith("rules_engine_")
        if family.type == "counter":
            assert not family.name.endswith("_total")  # the client adds `_total` to the samples
        if "latency" in family.name or "timestamp" in family.name:
            assert family.name.endswith("_seconds")


def test_promtool_accepts_the_alert_file() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is needed: `make install` installs it (as root: apt-get install prometheus)")
    result = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: [1-9][0-9]* rules found", result.stdout), result.stdout
