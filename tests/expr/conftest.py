from __future__ import annotations

from typing import Any

import pytest
from expr_fixtures import make_env


@pytest.fixture
def env() -> dict[str, Any]:
    """A price-and-signal environment as the engine would build it."""
    return make_env()
