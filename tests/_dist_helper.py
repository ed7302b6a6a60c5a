"""Imported (``custom_imports``) by the processes of tests/test_distributed.py.

- Mask2Former samples its loss points with ``torch.rand``: a different
  stream for a 4-image batch in one process than for two 2-image halves,
  so a 2-process run cannot equal a 1-process run bit for bit. Here every
  mask gets the same fixed points, which makes the comparison exact up to
  float reduction order. (Training itself is unaffected by this module:
  only the tests import it.)
- :class:`ImageCountMetric` counts the images an evaluation saw (after
  mmengine gathered them from all ranks).
- :class:`DumpStateHook` writes each rank's final weights and rank 0's
  validation metrics into the work dir.
"""
import json
import os.path as osp

import torch
from mmdet.models.dense_heads import mask2former_head
from mmdet.models.utils import point_sample
from mmdet.registry import HOOKS, METRICS
from mmengine.dist import get_rank
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


class _FixedRandTorch:
    """``torch`` with a ``rand`` that gives the same numbers for every row
    and every call."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def rand(*size, device=None, dtype=None, **kwargs):
        if len(size) == 1 and not isinstance(size[0], int):
            size = tuple(size[0])
        row = torch.rand((1, ) + tuple(size[1:]),
                         generator=torch.Generator().manual_seed(0))
        return row.expand(size).to(device=device,
                                   dtype=dtype or row.dtype).contiguous()


mask2former_head.torch = _FixedRandTorch()
point_sample.torch = _FixedRandTorch()


@HOOKS.register_module()
class DumpStateHook(Hook):
    priority = 'LOWEST'

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(
            dict(
                state=state,
                wrapper=type(runner.model).__name__,
                iter=runner.iter,
                sampler=type(runner.train_dataloader.sampler).__name__,
                world_size=runner.world_size,
                backend=runner.cfg.env_cfg.dist_cfg.get('backend')),
            osp.join(runner.work_dir, f'state_rank{get_rank()}.pth'))

    def after_val_epoch(self, runner, metrics=None) -> None:
        if get_rank() == 0:
            with open(osp.join(runner.work_dir,
                               f'metrics_iter{runner.iter}.json'), 'w') as f:
                json.dump({k: float(v) for k, v in metrics.items()}, f)


@METRICS.register_module()
class ImageCountMetric(BaseMetric):
    default_prefix = 'count'

    def process(self, data_batch, data_samples) -> None:
        self.results.extend(s['img_id'] for s in data_samples)

    def compute_metrics(self, results) -> dict:
        return dict(images=len(results), unique=len(set(results)))
