"""The worker config (`rules-engine worker --config FILE --check`): validated like a rule file,
with every problem at file:line:column; each cell must be a PostgreSQL standby engine config,
keys unique, one shared feed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rules_engine.cli import main
from rules_engine.service.worker_config import WorkerConfigError, load_worker_config

DSN = "postgresql://engine@127.0.0.1:5432/rules"
RULE = """version: 1
rules:
  - id: up
    cooldown: 1h
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
"""


def engine(tmp: Path, name: str, **overrides: object) -> str:
    config = {"version": 1, "store": {"url": DSN, "key": name, "standby": True, "exclusive": True}, **overrides}
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump(config))
    return f"{name}.yaml"


def test_a_valid_worker_config_lists_its_cells(tmp_path, capsys) -> None:
    cells = [{"config": engine(tmp_path, key), "rules": ["rules"]} for key in ("acct-1", "acct-2")]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULE)
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "state_dir": "st", "server": {"port": 9000}, "cells": cells}))
    config = load_worker_config(path)
    assert [c.key for c in config.cells] == ["acct-1", "acct-2"]
    assert config.cells[0].rules == (tmp_path / "rules",) and config.cells[1].state_dir == tmp_path / "st" / "acct-2"
    assert (config.host, config.port) == ("127.0.0.1", 9000)
    assert main(["worker", "--config", str(path), "--check"]) == 0
    assert "2 cells: acct-1, acct-2" in capsys.readouterr().out
    (tmp_path / "rules" / "r.yaml").write_text(RULE.replace("crosses_above", "crosses_abov"))
    assert main(["worker", "--config", str(path), "--check"]) == 1  # the cells' rules are checked too
    captured = capsys.readouterr()
    assert "1 with invalid rules" not in captured.out and "2 with invalid rules" in captured.out
    assert "cell acct-1:" in captured.err and "r.yaml" in captured.err


def test_schema_problems_are_reported_at_file_line_column(tmp_path, capsys) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text("version: 1\ncells:\n  - config: a.yaml\n    rulez: [r]\n")
    with pytest.raises(WorkerConfigError) as caught:
        load_worker_config(path)
    assert f"{path.as_posix()}:4:5" in str(caught.value) or f"{path.as_posix()}:3:" in str(caught.value)
    assert main(["worker", "--config", str(path)]) == 1
    assert "refusing to start" in capsys.readouterr().err


def test_cells_must_be_standby_postgresql_engines_with_unique_keys(tmp_path) -> None:
    plain = {"version": 1}
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(plain))
    cells = [{"config": engine(tmp_path, "acct-1"), "rules": ["r"]},
             {"config": "plain.yaml", "rules": ["r"]},
             {"config": engine(tmp_path, "acct-1"), "rules": ["r"]},
             {"config": "missing.yaml", "rules": ["r"]}]
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "cells": cells}))
    with pytest.raises(WorkerConfigError) as caught:
        load_worker_config(path)
    text = str(caught.value)
    assert "cell 2: plain.yaml needs `store:` with standby: true" in text
    assert "cell 3: key 'acct-1' is already cell 1's" in text
    assert "cell 4:" in text and "not found" in text


def test_cells_share_one_feed_so_their_endpoints_must_agree(tmp_path) -> None:
    cells = [{"config": engine(tmp_path, "acct-1"), "rules": ["r"]},
             {"config": engine(tmp_path, "acct-2", kraken={"feed": "v1"}), "rules": ["r"]}]
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "cells": cells}))
    with pytest.raises(WorkerConfigError, match="cell 2: its kraken endpoints or feed protocol differ"):
        load_worker_config(path)


def test_the_worker_kill_switch_token_comes_from_its_env_or_file(tmp_path) -> None:
    from rules_engine.service.startup import StartupError
    from rules_engine.service.worker import Worker
    from rules_engine.service.worker_status import WorkerStatus

    cells = [{"config": engine(tmp_path, "acct-1", kill_switch={"token_env": "ACCT_1_ADMIN"}), "rules": ["rules"]}]
    path = tmp_path / "worker.yaml"

    def status(kill: dict[str, str] | None, environ: dict[str, str]) -> WorkerStatus:
        path.write_text(yaml.safe_dump({"version": 1, "cells": cells, **({"kill_switch": kill} if kill else {})}))
        return WorkerStatus(Worker(load_worker_config(path), environ=environ))

    default = status(None, {"RULES_ENGINE_ADMIN_TOKEN": "w" * 20, "ACCT_1_ADMIN": "c" * 20})
    assert default.token == "w" * 20 and default.cell_tokens == {"acct-1": "c" * 20} and default.kill_enabled
    (tmp_path / "admin.token").write_text("f" * 20 + "\n")
    assert status({"token_file": "admin.token"}, {}).token == "f" * 20  # relative to the worker config
    assert not status({"token_env": "NOT_SET"}, {}).kill_enabled  # no token anywhere: /kill answers 503
    with pytest.raises(StartupError, match="kill switch token"):
        status({"token_file": "missing.token"}, {})
    with pytest.raises(StartupError, match="at least 16 characters"):
        status({"token_env": "SHORT"}, {"SHORT": "too-short"})


def test_the_private_feeds_budget_of_connection_attempts_defaults_to_100_and_is_checked(tmp_path, capsys) -> None:
    cells = [{"config": engine(tmp_path, "acct-1"), "rules": ["rules"]}]
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "cells": cells}))
    assert load_worker_config(path).private_connects == 100
    path.write_text(yaml.safe_dump({"version": 1, "cells": cells, "private_feeds": {"connects_per_10min": 40}}))
    assert load_worker_config(path).private_connects == 40
    path.write_text("version: 1\nprivate_feeds: {connects_per_10min: 0}\ncells:\n  - {config: acct-1.yaml, rules: [r]}\n")
    with pytest.raises(WorkerConfigError) as caught:
        load_worker_config(path)
    assert f"{path.as_posix()}:2:" in str(caught.value)


def test_cells_that_sign_requests_must_each_name_their_own_api_key(tmp_path, capsys) -> None:
    """Two cells reading one API key (a copied engine config whose kraken.api_key_env was left as it
    was) would trade one key from two cells, on two machines once another worker holds one of
    them: independent nonces and dead man's switches on one key. Refused; dry-run cells sign nothing."""
    cells = [{"config": engine(tmp_path, "acct-1", mode="live"), "rules": ["r"]},
             {"config": engine(tmp_path, "acct-2", mode="validate"), "rules": ["r"]},
             {"config": engine(tmp_path, "acct-3", mode="live", kraken={"api_key_env": "ACCT_3_KEY",
                                                                          "api_secret_env": "ACCT_3_SECRET"}),
              "rules": ["r"]},
             {"config": engine(tmp_path, "acct-4"), "rules": ["r"]}]  # dry-run
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "cells": cells}))
    with pytest.raises(WorkerConfigError) as caught:
        load_worker_config(path)
    text = str(caught.value)
    assert "cell 2: its API key is $KRAKEN_API_KEY, as cell 1's" in text
    assert "cell 3" not in text and "cell 4" not in text
    assert main(["worker", "--config", str(path), "--check"]) == 1
    assert "as cell 1's" in capsys.readouterr().err


def test_check_with_live_refuses_what_the_start_with_live_would(tmp_path, capsys) -> None:
    """`--check --live` checks each cell's mode as `worker --live` does (live needs both switches);
    `--check` alone validates the files only, so a unit's ExecStartPre without --live still passes."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "r.yaml").write_text(RULE)
    cells = [{"config": engine(tmp_path, "acct-1", mode="live"), "rules": ["r"]},
             {"config": engine(tmp_path, "acct-2"), "rules": ["r"]}]  # dry-run
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "cells": cells}))
    assert main(["worker", "--config", str(path), "--check"]) == 0
    capsys.readouterr()
    assert main(["worker", "--config", str(path), "--check", "--live"]) == 1
    err = capsys.readouterr().err
    assert "cell acct-2: --live was given but the engine config says mode: dry-run" in err and "acct-1" not in err


def test_a_token_pasted_as_the_kill_switch_variable_name_is_refused_without_being_printed(tmp_path, capsys) -> None:
    """`kill_switch: {token_env: <the token>}`: the worker logged it ('environment variable <token>
    is not set'). Now the file is refused at the line, naming what to write, never the value."""
    token = "9f2c4e1a-7b3d-5f60-8e9a-1c2b3d4e5f60"
    cells = [{"config": engine(tmp_path, "acct-1"), "rules": ["rules"]}]
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "kill_switch": {"token_env": token}, "cells": cells}))
    assert main(["worker", "--config", str(path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "must be the name of an environment variable (capitals, digits and _" in err
    assert token not in err
