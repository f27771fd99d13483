import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from rules_engine.config import ENV_NAME_HINT, ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parent.parent


def test_defaults_are_dry_run_against_real_kraken():
    cfg = load_config(None)
    assert cfg.mode == "dry-run"
    assert cfg.endpoints.spot_rest == "https://api.kraken.com"
    assert cfg.endpoints.ws_v2 == "wss://ws.kraken.com/v2"


def test_simulator_url_sets_every_endpoint(tmp_path):
    path = tmp_path / "engine.yaml"
    path.write_text(
        "mode: validate\n"
        "kraken: {simulator: 'http://127.0.0.1:9999', tier: pro}\n"
        "risk: {allowed_pairs: [XBTUSD], max_order_notional: {XBTUSD: 5000}, max_orders_per_minute: 3}\n"
        "signals: {tv: {passphrase_env: TV_PASS, schema: tradingview, timestamp_window: 2m}}\n"
    )
    cfg = load_config(path)
    assert cfg.mode == "validate"
    assert cfg.endpoints.futures_rest == "http://127.0.0.1:9999/derivatives"
    assert cfg.endpoints.ws_v1 == "ws://127.0.0.1:9999"
    assert cfg.endpoints.futures_ws == "ws://127.0.0.1:9999/ws/v1"
    assert cfg.risk.max_order_notional == {"XBTUSD": Decimal("5000")}
    assert cfg.risk.allowed_pairs == frozenset({"XBTUSD"})
    assert cfg.signals["tv"].timestamp_window == 120.0


def test_every_problem_is_listed():
    with pytest.raises(ConfigError) as info:
        parse_config({"mode": "yolo", "risk": {"max_open_orders": -1}, "secret": "x"}, "engine.yaml")
    text = str(info.value)
    assert "mode" in text and "max_open_orders" in text and "secret" in text


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_the_readme_engine_config_example_is_valid():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## The engine config file", 1)[1]
    [example] = re.findall(r"```yaml[^\n]*\n(.*?)```", section, flags=re.S)[:1]
    import yaml

    cfg = parse_config(yaml.safe_load(example), "README")
    assert cfg.mode == "dry-run" and cfg.tier == "starter"
    assert cfg.risk.max_order_notional["default"] == Decimal("1000")
    assert cfg.dead_man_interval == 20.0 and cfg.dead_man_timeout == 60.0


def test_a_tab_in_the_config_gets_a_plain_message_with_line_and_column(tmp_path):
    path = tmp_path / "engine.yaml"
    path.write_text("mode: dry-run\nrisk:\n\tmax_open_orders: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"{path}:3:1: not valid YAML: a tab is used for indentation; YAML indents with "
                                 "spaces only (replace the tab with spaces)")


def test_a_mistake_inside_the_store_mapping_is_named_not_hidden_behind_its_string_form():
    """`store:` is a URL string or a mapping: a typo inside the mapping names the key, not "is not
    valid under any of the given schemas" with the whole mapping."""
    url = "postgresql://engine@db/rules"
    with pytest.raises(ConfigError) as typo:
        parse_config({"store": {"url": url, "key": "k1", "standbyy": True}}, "e.yaml")
    assert "e.yaml: store: Additional properties are not allowed ('standbyy' was unexpected)" in str(typo.value)
    assert "any of the given schemas" not in str(typo.value)
    with pytest.raises(ConfigError) as duration:
        parse_config({"store": {"url": url, "lease_ttl": "abc"}}, "e.yaml")
    assert "e.yaml: store/lease_ttl: 'abc' does not match" in str(duration.value)
    with pytest.raises(ConfigError) as neither:  # neither form: the one message
        parse_config({"store": 5}, "e.yaml")
    assert "e.yaml: store: 5 is not valid under any of the given schemas" in str(neither.value)


SECRET = "0LAThmUWw6YBhNqGFDQe1GZ8XPgy0aYqpkPSW865jnHYkCVoGr58eLNQ3jsOfEVejwv/NkY81fEFowQ8hX2azw=="
TOKEN = "9f2c4e1a7b3d5f608e9a1c2b3d4e5f60"  # as `openssl rand -hex 16` makes: a valid name, were it not lower case


def _run(tmp_path, *args):
    """`rules-engine run` on a one-rule file with its state in tmp_path: exit code and output."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - id: beat\n    triggers: [{type: timer, every: 1h}]\n"
                     "    actions: [{type: log, message: hi}]\n")
    done = subprocess.run([sys.executable, "-m", "rules_engine", "run", str(rules), "--state-dir",
                           str(tmp_path / "state"), *args],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    return done.returncode, done.stdout + done.stderr


def test_a_secret_pasted_where_a_variable_name_belongs_is_refused_and_never_printed(tmp_path):
    """`api_secret_env: <the secret>` (and every other *_env setting) is refused at start with
    what to write, naming the setting but never quoting its value: before, `run` printed the
    secret in 'set <secret> (or its _FILE form)', and an admin token there was logged."""
    config = tmp_path / "engine.yaml"
    config.write_text(f"mode: validate\nkraken: {{api_key_env: KRAKEN_API_KEY, api_secret_env: '{SECRET}'}}\n"
                      f"kill_switch: {{token_env: {TOKEN}}}\n"
                      f"signals: {{tv: {{secret_env: 'tv secret 42'}}}}\n"
                      f"notifications: {{channels: {{ops: {{url_env: 'tgram://123:abc/456'}}}}}}\n")
    code, output = _run(tmp_path, "--config", str(config))
    assert code == 1, output
    for name in ("kraken/api_secret_env", "kill_switch/token_env", "signals/tv/secret_env",
                 "notifications/channels/ops/url_env"):
        assert f"{name}: {ENV_NAME_HINT}" in output
    assert "kraken/api_key_env" not in output  # a name in capitals is fine
    for value in (SECRET, TOKEN, "tv secret 42", "tgram://"):
        assert value not in output
    assert "Traceback" not in output


def test_live_without_any_config_says_there_is_none(tmp_path):
    """`run --live` without --config was refused with 'the engine config says mode: dry-run',
    about a file the operator never gave."""
    code, output = _run(tmp_path, "--live")
    assert code == 1, output
    assert "--live was given but no engine config (--config FILE)" in output
    assert "engine config says" not in output
