import numpy as np
import pytest


@pytest.fixture
def rng():
    """A freshly seeded generator, so every test is reproducible on its own."""
    return np.random.default_rng(0)
