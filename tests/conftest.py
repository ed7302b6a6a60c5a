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
