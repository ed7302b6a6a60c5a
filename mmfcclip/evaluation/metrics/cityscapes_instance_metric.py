"""Cityscapes instance AP (cityscapesScripts' protocol) on numpy >= 2.4."""
import contextlib
from typing import Dict, Iterator

import numpy as np
from mmdet.evaluation.metrics import CityScapesMetric
from mmdet.registry import METRICS

__all__ = ['OVCityScapesMetric']


@contextlib.contextmanager
def _numpy_in1d() -> Iterator[None]:
    """Provide ``np.in1d`` (removed in numpy 2.4) while cityscapesScripts
    evaluates; its 2.3 release still calls it. ``np.isin`` on flattened
    input is the same function. Nothing changes when numpy has it."""
    if hasattr(np, 'in1d'):
        yield
        return
    np.in1d = lambda a, b, *args, **kwargs: np.isin(  # noqa: E731
        np.ravel(a), b, *args, **kwargs)
    try:
        yield
    finally:
        del np.in1d


@METRICS.register_module()
class OVCityScapesMetric(CityScapesMetric):
    """mmdet's :class:`CityScapesMetric` (the official Cityscapes instance
    evaluation, as FC-CLIP's ``CityscapesInstanceEvaluator``) that also runs
    with numpy >= 2.4: cityscapesScripts 2.3.0 calls ``np.in1d``, which
    numpy 2.4 removed, and fails in the middle of the evaluation. Same
    arguments, inputs and outputs (``mAP``, ``AP@50``, fractions); needs
    ``pip install cityscapesscripts``.

    Used by the Cityscapes config of ``configs/zero_shot/``, which imports
    this module through ``custom_imports``.
    """

    def compute_metrics(self, results: list) -> Dict[str, float]:
        with _numpy_in1d():
            return super().compute_metrics(results)
