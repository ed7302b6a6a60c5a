"""The project's scripts (``tools/``, ``demo/``: not packages) as modules,
for tests that call their functions or ``main`` in-process."""
import importlib.util
import os.path as osp
from types import ModuleType
from typing import Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_script(path: str, name: Optional[str] = None) -> ModuleType:
    """Import a script by its path from the repository root.

    Args:
        path (str): E.g. ``'demo/image_demo.py'``.
        name (str, optional): Module name; defaults to the file's stem.
    """
    name = name or osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
