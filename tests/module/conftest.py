"""Fixtures of the module tests (tests/conftest.py already clears nnabla's parameter scope)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.RandomState:
    return np.random.RandomState(1234)
