import os
import sys

# the suite runs from any directory: paths in tests are relative to the root
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mmfcclip  # noqa: E402,F401  (fills the mmdet registries)
