"""Read secrets (API keys and secrets, webhook secrets, passphrases, admin tokens) from the
environment or from files, never showing their value.

Two ways a deployment hands one over:

- `secret_from_env(NAME)`: the variable `NAME`, or the file that `NAME_FILE` names (the form
  Docker and Kubernetes secrets use). Kraken API credentials are read this way.
- `load_secret(env=..., file=...)`: the variable or the file the engine config names.
  Signal sources' secrets and the kill switch's admin token are read this way.

File contents have surrounding whitespace stripped. Errors are `SecretError`s that name
where the secret was looked for, never its value. Register what you read with
`rules_engine.redact.register_secret` as soon as you have it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class SecretError(ValueError):
    """A secret could not be loaded; the message names where it was looked for, never its value."""


def read_secret_file(path: str | Path, label: str) -> str:
    """The UTF-8 text of `path`, surrounding whitespace stripped. `label` names the file in
    errors (`secret file /run/secrets/x`)."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(f"cannot read {label}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise SecretError(f"{label} is not UTF-8 text") from None


def secret_from_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of `name`, else the contents of the file `<name>_FILE` names; None if neither
    is set (an empty variable counts as not set). Both set is an error."""
    env = os.environ if environ is None else environ
    value, path = env.get(name), env.get(f"{name}_FILE")
    if value and path:
        raise SecretError(f"both {name} and {name}_FILE are set; set one")
    if value:
        return value
    if path:
        return read_secret_file(path, f"{name}_FILE ({path})")
    return None


def load_secret(
    env: str | None = None,
    file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Read a secret from the environment variable `env` or from `file` (surrounding whitespace
    stripped). Exactly one of the two must be given; an empty secret is an error."""
    if env is not None and file is None:
        value = (os.environ if environ is None else environ).get(env)
        if value is None:
            raise SecretError(f"environment variable {env} is not set")
        where = f"environment variable {env}"
    elif file is not None and env is None:
        where = f"secret file {file}"
        value = read_secret_file(file, where)
    else:
        raise SecretError("give exactly one of an environment variable or a file for a secret")
    value = value.strip()
    if not value:
        raise SecretError(f"{where} is empty")
    return value
