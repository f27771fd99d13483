"""The worker config (`rules-engine worker --config FILE`): the key cells one worker process
hosts, validated like a rule file (every problem at `file:line:column`).

    # yaml-language-server: $schema=../schemas/worker.schema.json
    version: 1
    server: {host: 0.0.0.0, port: 8080}   # the worker's HTTP server (status page, healthz, readyz, metrics, kill)
    kill_switch: {token_env: RULES_ENGINE_ADMIN_TOKEN}   # the admin token of POST /kill (the default)
    state_dir: /var/lib/rules-engine       # each cell's state dir: <state_dir>/<key> (its kill switch file)
    private_feeds: {connects_per_10min: 100}   # the cells' private feeds, together (the default)
    cells:
      - config: engine-acct-1.yaml         # store: {url, key: acct-1, standby: true, exclusive: true}
        rules: [rules/acct-1]
      - config: engine-acct-2.yaml
        rules: [rules/common, rules/acct-2]

Layers: YAML (the rule loader's safe reader), `schemas/worker.schema.json`, then meaning: each
cell's engine config loads, is on the PostgreSQL store with `standby: true` (so any worker can
stand in for any key), keys are unique, and all cells use the same Kraken endpoints and spot
feed protocol (they share one public WebSocket).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator

from rules_engine.config import ConfigError, EngineConfig, load_config
from rules_engine.resources import schema_path
from rules_engine.rules.diagnostics import Diagnostic
from rules_engine.rules.file_schema import diagnostic_at, read_side_file
from rules_engine.service.connect_budget import DEFAULT_ATTEMPTS

SCHEMA = "worker.schema.json"
CODE = "worker-config"
EMPTY_FILE = "the worker config is empty; it holds `version: 1` and `cells:`"


class WorkerConfigError(Exception):
    """The worker config is unusable; `diagnostics` says where and why."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("\n".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics


@dataclass(frozen=True)
class CellSpec:
    """One key cell: its store key, engine config, rule paths and state dir."""

    key: str
    config: EngineConfig
    rules: tuple[Path, ...]
    state_dir: Path


@dataclass(frozen=True)
class WorkerConfig:
    file: str
    host: str
    port: int
    cells: tuple[CellSpec, ...]
    kill_token_env: str | None = "RULES_ENGINE_ADMIN_TOKEN"
    kill_token_file: Path | None = None  # instead of the variable
    private_connects: int = DEFAULT_ATTEMPTS  # the cells' private feeds: connection attempts per 10 minutes


def load_worker_config(path: Path) -> WorkerConfig:
    """The file's cells; raises WorkerConfigError with every problem found."""
    document = read_side_file(path, "worker config", EMPTY_FILE, CODE, _validator(), WorkerConfigError)
    name = document.file
    diagnostics: list[Diagnostic] = []
    data = document.data
    base = path.parent
    state_root = base / data.get("state_dir", "state")
    cells: list[CellSpec] = []
    seen: dict[str, int] = {}
    signing: dict[str, int] = {}  # api_key_env -> the cell that reads it
    for index, spec in enumerate(data["cells"]):
        here = ("cells", index, "config")
        try:
            config = load_config(base / spec["config"])
        except ConfigError as exc:
            diagnostics.append(diagnostic_at(document, here, f"cell {index + 1}: {exc}", CODE))
            continue
        store = config.store
        if store is None or not store.standby:
            diagnostics.append(diagnostic_at(document, here, f"cell {index + 1}: {spec['config']} needs `store:` "
                                             "with standby: true and exclusive: true (a worker takes each key's "
                                             "lease and stands in for any key)", CODE))
            continue
        if store.key in seen:
            diagnostics.append(diagnostic_at(document, here, f"cell {index + 1}: key {store.key!r} is already "
                                             f"cell {seen[store.key] + 1}'s", CODE))
            continue
        seen[store.key] = index
        if config.mode != "dry-run":  # signs requests: one API key per cell (its nonces, its fence)
            if config.api_key_env in signing:
                diagnostics.append(diagnostic_at(document, here, f"cell {index + 1}: its API key is "
                                                 f"${config.api_key_env}, as cell {signing[config.api_key_env] + 1}'s; "
                                                 "each cell trades an API key of its own (give it its own "
                                                 "kraken.api_key_env and api_secret_env)", CODE))
                continue
            signing[config.api_key_env] = index
        if cells and (config.endpoints != cells[0].config.endpoints or config.feed != cells[0].config.feed):
            diagnostics.append(diagnostic_at(document, here, f"cell {index + 1}: its kraken endpoints or feed "
                                             "protocol differ from cell 1's; the cells share one public feed", CODE))
            continue
        state_dir = base / spec["state_dir"] if "state_dir" in spec else state_root / store.key
        cells.append(CellSpec(store.key, config, tuple(base / r for r in spec["rules"]), state_dir))
    if diagnostics:
        raise WorkerConfigError(sorted(set(diagnostics), key=Diagnostic.sort_key))
    server = data.get("server", {})
    kill = data.get("kill_switch", {})
    return WorkerConfig(name, server.get("host", "127.0.0.1"), server.get("port", 8080), tuple(cells),
                        kill_token_env=kill.get("token_env", "RULES_ENGINE_ADMIN_TOKEN"),
                        kill_token_file=base / kill["token_file"] if "token_file" in kill else None,
                        private_connects=data.get("private_feeds", {}).get("connects_per_10min", DEFAULT_ATTEMPTS))


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = json.loads(schema_path(SCHEMA).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)
