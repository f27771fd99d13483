"""`rules-engine kill`: engage, clear or show the kill switch.

By default it writes the kill file `<state dir>/KILL`, which a running engine notices within
about a second and an engine that starts later obeys from its first moment. The state dir is
`--state-dir`, else `$RULES_ENGINE_STATE_DIR`, else the `state_dir` of `--config`, else
`./state` (the engine's order); it must exist (a mistyped path would otherwise stop nothing). With `--url` it
calls the engine's authenticated `/kill` endpoint instead; a worker's (`rules-engine worker`) acts on
every cell, or with `--key K` on cell K only.

Exit codes: 0 done, 1 it could not be done (file not writable, engine unreachable or
refused), 2 usage error.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import requests

from rules_engine.config import ConfigError, EngineConfig, load_config
from rules_engine.secret_reader import SecretError, load_secret
from rules_engine.service.killswitch import (
    STATE_DIR_ENV,
    KillFileState,
    KillSwitchError,
    KillSwitchFile,
    default_state_dir,
    kill_file,
    read_kill_file,
)

DEFAULT_TOKEN_ENV = "RULES_ENGINE_ADMIN_TOKEN"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "kill",
        help="engage, clear or show the kill switch",
        description="Engage the kill switch (no rule action runs until it is cleared), clear it, or show it.",
        epilog="Exit codes: 0 done, 1 could not be done, 2 usage error.",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--clear", action="store_true", help="clear the kill switch (actions run again)")
    what.add_argument("--status", action="store_true", help="show whether the kill switch is engaged")
    parser.add_argument("--reason", metavar="TEXT", help="why (recorded in the kill file and the audit log)")
    parser.add_argument("--cancel-all", action="store_true", help="also cancel every open order")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--state-dir", metavar="DIR", type=Path, help="the engine's state dir (holds the KILL file)")
    where.add_argument("--url", metavar="URL", help="call a running engine instead, e.g. http://127.0.0.1:8080")
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="engine config: its state_dir and kill_switch token settings")
    parser.add_argument("--key", metavar="KEY",
                        help="with --url of a worker (`rules-engine worker`): only the cell of this store key "
                             "(default: every cell)")
    parser.add_argument("--token-file", metavar="FILE", type=Path,
                        help=f"admin token for --url (default: the config's token settings, else ${DEFAULT_TOKEN_ENV})")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=10.0,
                        help="HTTP timeout for --url (default: 10)")
    parser.add_argument("--json", action="store_true", help="print the resulting state as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.clear or args.status) and (args.reason is not None or args.cancel_all):
        return _usage("--reason and --cancel-all only go with engaging, not with --clear or --status")
    if args.token_file is not None and args.url is None:
        return _usage("--token-file only goes with --url")
    if args.key is not None and args.url is None:
        return _usage("--key only goes with --url (a worker's); for a cell's file use --state-dir <state_dir>/<key>")
    config = None
    if args.config is not None:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            return _usage(str(exc))
    if args.url is not None:
        return _via_http(args, config)
    state_dir = args.state_dir or (config.state_dir if config is not None else default_state_dir())
    return _via_file(args, state_dir)


def _via_file(args: argparse.Namespace, state_dir: Path) -> int:
    path = kill_file(state_dir)
    if args.status:
        return _show(read_kill_file(path) or KillFileState(False), args.json)
    if not state_dir.is_dir():
        return _fail(f"state dir {state_dir} does not exist: "
                     f"pass the engine's with --state-dir, --config or ${STATE_DIR_ENV}")
    switch = KillSwitchFile(path, in_engine=False)  # its errors are this command's to say
    if args.clear:
        try:
            state = switch.clear(source=_who())
        except KillSwitchError as exc:
            return _fail(str(exc))
        return _show(state, args.json)
    state = switch.engage(args.reason or "engaged from the command line", args.cancel_all, _who())
    if switch.persist_error is not None:  # this process's switch is engaged, but it ends here
        return _fail(f"{switch.persist_error}: the kill switch is NOT engaged. Engage it through the running "
                     f"engine instead: --url with its admin token, or SIGUSR1 to its process")
    return _show(state, args.json)


def _via_http(args: argparse.Namespace, config: EngineConfig | None) -> int:
    try:
        token = _token(args, config)
    except SecretError as exc:
        return _usage(f"no admin token for --url: {exc}")
    base = args.url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    query = {} if args.key is None else {"key": args.key}
    try:
        if args.status:
            response = requests.get(f"{base}/kill", params=query, headers=headers, timeout=args.timeout)
        elif args.clear:
            response = requests.post(f"{base}/kill/clear", params=query, headers=headers, timeout=args.timeout)
        else:
            body = {"reason": args.reason or "engaged from the command line", "cancel_all": args.cancel_all,
                    "source": _who()}
            response = requests.post(f"{base}/kill", params=query, json=body, headers=headers, timeout=args.timeout)
    except requests.RequestException as exc:
        return _fail(f"cannot reach the engine at {base}: {type(exc).__name__}")
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code == 401:
        return _fail("the engine refused the admin token")
    known = isinstance(answer, dict) and ("kill_switch" in answer or isinstance(answer.get("cells"), dict))
    if response.status_code != 200 or not known:
        reason = answer.get("reason") if isinstance(answer, dict) else None
        return _fail(f"the engine answered HTTP {response.status_code}: {reason or response.reason}")
    if answer.get("warning"):
        print(f"rules-engine kill: warning: {answer['warning']}", file=sys.stderr)
    if "kill_switch" not in answer:  # a worker: every cell's
        states = {key: _state(data) for key, data in answer["cells"].items()}
        print(json.dumps({key: state.to_json() for key, state in states.items()}) if args.json else
              "\n".join(f"cell {key}: kill switch: {state.describe()}" for key, state in states.items()))
        return 0
    return _show(_state(answer["kill_switch"]), args.json)


def _state(data: dict[str, Any]) -> KillFileState:
    return KillFileState(bool(data.get("engaged")), data.get("reason", ""), bool(data.get("cancel_all")),
                         data.get("source", ""), data.get("time"))


def _token(args: argparse.Namespace, config: EngineConfig | None) -> str:
    if args.token_file is not None:
        return load_secret(file=args.token_file)
    if config is not None and config.kill_token_file:
        return load_secret(file=config.kill_token_file)
    return load_secret(env=(config.kill_token_env if config is not None else None) or DEFAULT_TOKEN_ENV)


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli {user}@{socket.gethostname()}"


def _show(state: KillFileState, as_json: bool) -> int:
    print(json.dumps(state.to_json()) if as_json else f"kill switch: {state.describe()}")
    return 0


def _fail(message: str) -> int:
    print(f"rules-engine kill: {message}", file=sys.stderr)
    return 1


def _usage(message: str) -> int:
    print(f"rules-engine kill: {message}", file=sys.stderr)
    return 2
