"""Locate files shipped with the package (schemas, the AssetPairs snapshot).

In a wheel the JSON schemas live at `rules_engine/schemas/` (hatch force-includes the
top-level `schemas/` folder there); in a source checkout or editable install they are
read from the repository's `schemas/` folder, the single source of truth.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def schemas_dir() -> Path:
    """The folder holding `rules.schema.json` and friends."""
    packaged = _PACKAGE_DIR / "schemas"
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent / "schemas"


def schema_path(name: str) -> Path:
    """Path of one schema file, e.g. `schema_path("rules.schema.json")`."""
    return schemas_dir() / name


def data_path(name: str) -> Path:
    """Path of a data file shipped inside the package (`rules_engine/data/`)."""
    return _PACKAGE_DIR / "data" / name
