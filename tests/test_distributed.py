"""Distributed training, proven on CPU: 2 processes (torchrun, gloo) against
1 process with the same total batch (docs/training.md, "Many GPUs")."""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, 'tools/dataset_converters')
from generate_synthetic_panoptic import generate  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PY = sys.executable

# The tiny demo config, made deterministic for an exact comparison: no
# random augmentation (each process would draw its own), and void weighted
# like the classes. With the recipe's void weight 0.1, mmdet normalises
# loss_cls by the class weights of each process's own batch (not
# all-reduced, unlike the mask losses' num_masks), so 2 x 2 images and
# 1 x 4 images differ slightly whenever the processes hold different
# numbers of segments.
CONFIG = """
_base_ = {base!r}
custom_imports = dict(imports=['mmfcclip', '_dist_helper'],
                      allow_failed_imports=False)
data_root = {root!r}
model = dict(panoptic_head=dict(loss_cls=dict(class_weight=[1.0] * 6)))
train_pipeline = [t for t in _base_.train_pipeline if t['type'] not in
                  ('RandomFlip', 'RandomResize', 'RandomCrop')]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='OVCocoPanopticMetric',
         ann_file=data_root + 'annotations/panoptic_val2017.json',
         seg_prefix=data_root + 'annotations/panoptic_val2017/'),
    dict(type='SemSegMetric', iou_metrics=['mIoU']),
    dict(type='ImageCountMetric')]
test_evaluator = val_evaluator
train_cfg = dict(max_iters=4, val_interval=2, dynamic_intervals=None)
param_scheduler = dict(end=4, milestones=[3])
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, save_best=None, max_keep_ckpts=-1))
custom_hooks = _base_.custom_hooks + [dict(type='DumpStateHook')]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(args, work_dir, nproc=1, extra=()):
    env = dict(os.environ, PYTHONPATH=osp.join(ROOT, 'tests'),
               OMP_NUM_THREADS='1')
    if nproc == 1:
        cmd = [PY, 'tools/train.py']
    else:
        cmd = [PY, '-m', 'torch.distributed.run',
               f'--nproc_per_node={nproc}', f'--master_port={_free_port()}',
               'tools/train.py']
    cmd += list(args) + ['--work-dir', str(work_dir)] + list(extra)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]
    return log


@pytest.mark.slow
def test_two_process_gloo_training_equals_one_process(tmp_path):
    data_root = str(tmp_path / 'data') + '/'
    generate(data_root, num_train=16, num_val=5, size=96, seed=3)
    cfg = tmp_path / 'dist_cfg.py'
    cfg.write_text(CONFIG.format(
        base=osp.join(ROOT, 'configs/fcclip_tiny_synthetic.py'),
        root=data_root))

    # 2 processes x 2 images, interrupted after iteration 2 and resumed
    dist = tmp_path / 'dist'
    log = _run([str(cfg), '--launcher', 'pytorch'], dist, nproc=2,
               extra=['--cfg-options', 'train_cfg.max_iters=2'])
    assert "-> 'gloo'" in log  # tool_utils chose gloo: no CUDA here
    log = _run([str(cfg), '--launcher', 'pytorch', '--resume'], dist,
               nproc=2)
    assert 'resumed' in log.lower() or 'Advance dataloader' in log
    # 1 process x 4 images, uninterrupted
    single = tmp_path / 'single'
    _run([str(cfg)], single,
         extra=['--cfg-options', 'train_dataloader.batch_size=4'])

    ranks = [torch.load(dist / f'state_rank{r}.pth', weights_only=False)
             for r in (0, 1)]
    one = torch.load(single / 'state_rank0.pth', weights_only=False)
    assert ranks[0]['wrapper'] == 'MMDistributedDataParallel'
    assert ranks[0]['world_size'] == 2 and ranks[0]['backend'] == 'gloo'
    assert ranks[0]['iter'] == one['iter'] == 4
    # both ranks hold the same weights, bit for bit
    for key, value in ranks[0]['state'].items():
        assert torch.equal(value, ranks[1]['state'][key]), key
    # and the weights of the single process with the same total batch
    # (float summation order aside)
    worst = 0.0
    for key, value in ranks[0]['state'].items():
        if value.is_floating_point():
            diff = (value - one['state'][key]).abs().max().item()
            worst = max(worst, diff)
            assert torch.allclose(value, one['state'][key], rtol=1e-4,
                                  atol=1e-5), (key, diff)
    print(f'largest weight difference, 2 x 2 vs 1 x 4 images: {worst:.2e}')

    # validation gathered from both ranks, each of the 5 images once
    # (2 ranks pad 5 to 6; mmengine drops the padding): same PQ and mIoU
    for it in (2, 4):
        dist_m = json.loads((dist / f'metrics_iter{it}.json').read_text())
        one_m = json.loads((single / f'metrics_iter{it}.json').read_text())
        assert dist_m['count/images'] == dist_m['count/unique'] == 5
        for key, value in one_m.items():
            assert dist_m[key] == pytest.approx(value, abs=1e-3), key
    print(f'validation at iteration 4, 2 processes: {dist_m}')
    # checkpoints written once (by rank 0), nothing per rank
    ckpts = sorted(osp.basename(p) for p in glob.glob(str(dist / '*.pth')))
    assert ckpts == ['iter_2.pth', 'iter_4.pth', 'state_rank0.pth',
                     'state_rank1.pth']
    assert (dist / 'last_checkpoint').read_text().strip().endswith(
        'iter_4.pth')
