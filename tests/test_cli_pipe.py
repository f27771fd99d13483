"""A command whose reader goes away (`rules-engine pairs list | head -1`, `audit show | head`)
stops quietly: no traceback on stderr."""

from __future__ import annotations

import subprocess
import sys


def test_a_closed_pipe_ends_the_command_without_a_traceback() -> None:
    command = [sys.executable, "-m", "rules_engine", "pairs", "list"]  # about 110 KB: more than a pipe holds
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith(b"ALTNAME")
        process.stdout.close()  # as `head -1` does after its line
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 1
