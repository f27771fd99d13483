"""The mode gate: real orders need two independent switches.

Live trading starts only when the engine config says `mode: live` AND the command line
has `--live`. Any other combination that involves either switch refuses to start and says
which switch is missing; validate and live also need Kraken API credentials.
"""

from __future__ import annotations

from rules_engine.config import MODES


class LiveModeRefused(Exception):
    """The requested mode may not start; the message says why and how to fix it."""


def check_live_allowed(
    config_mode: str,
    cli_live: bool,
    *,
    credentials_present: bool | None = None,
    credential_names: str = "the variables named by kraken.api_key_env / kraken.api_secret_env",
    config_given: bool = True,
) -> None:
    """Raise LiveModeRefused unless the mode switches (and credentials, when given) agree.

    - `mode: live` + `--live`: live trading.
    - `--live` without `mode: live`: refused (the config must say live too; `config_given=False`:
      there is no config at all, said so).
    - `mode: live` without `--live`: refused (the command line must say so too).
    - `dry-run` / `validate` without `--live`: allowed.
    - `credentials_present=False` with `live` or `validate`: refused.
    """
    if config_mode not in MODES:
        raise LiveModeRefused(f"unknown mode {config_mode!r} in the engine config; use one of {', '.join(MODES)}")
    if cli_live and not config_given:
        raise LiveModeRefused(
            "--live was given but no engine config (--config FILE), and without one the mode is dry-run; "
            "refusing to trade for real. Pass a config that says `mode: live`, or drop --live"
        )
    if cli_live and config_mode != "live":
        raise LiveModeRefused(
            f"--live was given but the engine config says mode: {config_mode}; refusing to trade for real. "
            "Set `mode: live` in the engine config as well, or drop --live"
        )
    if config_mode == "live" and not cli_live:
        raise LiveModeRefused(
            "the engine config says mode: live but --live was not given on the command line; refusing to "
            "trade for real. Add --live to confirm, or set mode: dry-run / validate"
        )
    if credentials_present is False and config_mode in ("live", "validate"):
        raise LiveModeRefused(
            f"mode {config_mode} sends signed requests to Kraken but no API credentials were found; set "
            f"{credential_names} (or their _FILE forms)"
        )
