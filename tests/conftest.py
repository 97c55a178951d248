"""Shared fixtures: a seeded generator and numeric assertions; hypothesis's CI profile."""

import os

import numpy as np
import pytest
from hypothesis import settings

# In CI every property test replays the same examples (a red build must mean a change
# broke something, not that a new random example was drawn); locally they explore.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def assert_close(actual, expected, rtol=1e-5, atol=1e-6, what=""):
    """Elementwise closeness with a message that says where and by how much."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what} shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)
