"""The subscriptions file of signal fan-out: validated like a rule file (every problem at
file:line:column, "did you mean"), its sizing reaching the rules as `signal.account`, and
`rules-engine intake --check`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from rules_engine.cli import main
from rules_engine.rules import load_rules_text
from rules_engine.service.subscriptions import SubscriptionsError, account_fields, load_subscriptions

VALID = """\
# yaml-language-server: $schema=../schemas/subscriptions.schema.json
version: 1
providers:
  signalco:
    secret_env: SIGNALCO_SECRET
    schema: tradingview
    max_age: 10s
    accounts:
      acct-1: {scale: 1}
      acct-2: {scale: 0.5, max_volume: 0.02}
      acct-3:
  tv:
    passphrase_env: TV_PASS
    accounts:
      acct-1: {}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "subscriptions.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    try:
        load_subscriptions(write(tmp_path, text))
    except SubscriptionsError as exc:
        return [str(d).split(":", 1)[1] for d in exc.diagnostics]  # without the folder
    raise AssertionError("the file was accepted")


def test_a_valid_file_gives_each_provider_its_source_max_age_and_accounts(tmp_path) -> None:
    subscriptions = load_subscriptions(write(tmp_path, VALID))
    signalco, tv = subscriptions.providers["signalco"], subscriptions.providers["tv"]
    assert (signalco.max_age, tv.max_age) == (10.0, 30.0)  # 30 s by default
    assert signalco.source.secret_env == "SIGNALCO_SECRET" and signalco.source.schema == "tradingview"
    assert signalco.source.timestamp_window == 300.0 and tv.source.passphrase_env == "TV_PASS"
    assert signalco.accounts == {"acct-1": {"scale": 1}, "acct-2": {"scale": Decimal("0.5"),
                                                                    "max_volume": Decimal("0.02")}, "acct-3": {}}
    assert subscriptions.keys == ["acct-1", "acct-2", "acct-3"]
    assert account_fields("acct-3", {}) == {"key": "acct-3", "scale": 1}
    assert account_fields("acct-2", signalco.accounts["acct-2"])["scale"] == Decimal("0.5")


def test_every_problem_is_reported_at_its_line_and_column_with_a_hint(tmp_path) -> None:
    text = """\
version: 1
providers:
  signalco:
    secret_env: S
    max_age: 10
    acounts: {a: {}}
  other:
    secret_env: X
    schema: tradingvew
    accounts:
      a: {scale: 0}
      b: {key: 1}
      "bad key!": {}
  Upper: {secret_env: Y, accounts: {a: {}}}
  nosecret:
    accounts: {a: {}}
"""
    found = problems(tmp_path, text)
    assert "3:3: provider is missing \"accounts\"" in found
    assert "5:14: a duration such as 500ms, 30s, 5m or 1h" in found
    assert '6:5: unknown key "acounts" in provider (did you mean "accounts"?)' in found
    assert "11:18: scale is a number above 0 (1: the provider's size as sent)" in found
    assert "12:16: `key` is set by the engine (the account's store key); choose another name" in found
    assert any(p.startswith("13:7:") and "an account is a store key" in p for p in found)
    assert any(p.startswith("14:3:") and "a provider name is lower-case" in p for p in found)
    assert len(found) == 7  # the schema layer reports all of them; the meaning layer waits until they are fixed
    # the meaning layer runs once the schema holds: a secret per provider, a payload schema that exists
    text = VALID.replace("schema: tradingview", "schema: tradingvew").replace("    passphrase_env: TV_PASS\n", "")
    assert problems(tmp_path, text) == [
        '6:13: no payload schema named \'tradingvew\' in schemas/signals/ (did you mean "tradingview"?)',
        "12:3: provider \"tv\" needs secret_env or secret_file (HMAC), or passphrase_env or passphrase_file"]
    assert problems(tmp_path, "") == ["1:1: the subscriptions file is empty; it holds `version: 1` and `providers:`"]
    assert problems(tmp_path, "version: 1\nproviders: {a: {accounts: {x: {}}}, a: {}}\n")[0].startswith("2:")


def test_rules_read_the_account_sizing_even_from_a_provider_with_a_closed_payload_schema() -> None:
    rules = """\
version: 1
rules:
  - id: follow
    cooldown: 1m
    triggers: [{type: signal, source: tradingview, where: "signal.action == 'buy'"}]
    actions:
      - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "=0.01 * signal.account.scale"}
"""
    result = load_rules_text(rules, "follow.yaml")
    assert [str(d) for d in result.errors] == [] and [str(w) for w in result.warnings] == []
    typo = load_rules_text(rules.replace("signal.action", "signal.acton"), "follow.yaml")
    assert any('did you mean "action"' in str(d) for d in typo.errors + typo.warnings)  # other fields still checked


def test_intake_check_validates_the_file(tmp_path, capsys) -> None:
    assert main(["intake", "--subscriptions", str(write(tmp_path, VALID)), "--check"]) == 0
    assert "OK (2 provider(s), 3 account(s))" in capsys.readouterr().out
    assert main(["intake", "--subscriptions", str(write(tmp_path, "version: 2\nproviders: {}\n")), "--check"]) == 1
    err = capsys.readouterr().err
    assert "subscriptions.yaml:1:10: version must be 1" in err and "problem(s) in" in err
    assert main(["intake", "--subscriptions", str(write(tmp_path, VALID))]) == 2  # serving needs --store
    assert "--store URL is required" in capsys.readouterr().err


def test_a_secret_pasted_as_a_variable_name_is_refused_without_being_printed(tmp_path, capsys) -> None:
    """`secret_env: <the HMAC key>`: the intake's refusal printed it ('environment variable <key>
    is not set'). Now the file is refused at the line, naming what to write, never the value."""
    secret = "s3cr3t-HMAC/key+with=="
    text = VALID.replace("secret_env: SIGNALCO_SECRET", f"secret_env: '{secret}'")
    assert main(["intake", "--subscriptions", str(write(tmp_path, text)), "--check"]) == 1
    err = capsys.readouterr().err
    assert ":5:17: must be the name of an environment variable (capitals, digits and _" in err
    assert secret not in err
