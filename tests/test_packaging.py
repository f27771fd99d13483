"""The installed wheel carries everything the engine reads at run time, not only an editable checkout."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_the_schemas_and_the_pair_snapshot(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("rules_engine-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for schema in REPO.glob("schemas/**/*.json"):
        assert f"rules_engine/{schema.relative_to(REPO).as_posix()}" in names
    assert "rules_engine/data/asset_pairs.json" in names
    assert "rules_engine/data/asset_pairs.index.json" in names
    assert not any(name.startswith(("tests/", "rules/")) for name in names)
