"""The core performs no I/O and reads no clock: proven by what it imports."""

import ast
import subprocess
import sys
from pathlib import Path

import rules_engine.core

CORE_DIR = Path(rules_engine.core.__file__).parent
FORBIDDEN = {
    "socket", "ssl", "asyncio", "selectors", "requests", "websockets", "aiohttp", "urllib", "http",
    "time", "datetime", "os", "sys", "io", "pathlib", "shutil", "tempfile", "sqlite3", "logging",
    "threading", "multiprocessing", "subprocess", "signal", "random", "secrets", "builtins",
}



def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    return names


def test_core_modules_import_nothing_that_does_io_or_reads_a_clock():
    files = sorted(CORE_DIR.glob("*.py"))
    assert len(files) >= 8
    for path in files:
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN, f"{path.name} imports {name}"
            if top == "rules_engine":
                assert name.startswith("rules_engine.core"), f"{path.name} imports {name}"


def test_core_sources_never_call_open_eval_or_print():
    for path in CORE_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"open", "eval", "exec", "print", "input", "__import__"}, path.name


def test_importing_the_core_loads_no_network_event_loop_or_logging_module():
    code = (
        "import sys; before = set(sys.modules); import rules_engine.core; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "rules_engine.core.engine" in loaded
    bad = {"socket", "ssl", "asyncio", "selectors", "requests", "websockets", "aiohttp", "sqlite3", "logging",
           "threading", "subprocess", "http", "urllib"}
    assert not [m for m in loaded if m.split(".")[0] in bad]
