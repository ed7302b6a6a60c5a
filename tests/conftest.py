import os
import random
import sys

import numpy as np
import pytest
import torch

# the suite runs from any directory: paths in tests are relative to the root
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mmfcclip  # noqa: E402,F401  (fills the mmdet registries)


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: takes more than 20 s on a 2-core CPU (still run '
        'by `make test`; deselect with -m "not slow")')


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state, whatever ran before
    it: draws without an explicit generator are reproducible too."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_leaked_grad_mode():
    """A test (or a tool's ``main`` run in-process) that switches autograd
    off globally breaks every later training test far from the cause:
    fail the test that leaked it instead, and restore the mode."""
    yield
    if not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail('the test left autograd disabled globally '
                    '(torch.set_grad_enabled(False) outside a context)')
