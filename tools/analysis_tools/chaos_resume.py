"""Kill training at random moments, resume, and check nothing was lost.

Trains the tiny synthetic config once without interruption (the
reference), then trains it again in another work_dir while SIGKILLing the
trainer ``--kills`` times: at a random moment of the run, or, for a share
of the kills, while a checkpoint is being written (a temporary
checkpoint file of :class:`SafeCheckpointRunner` exists). After every kill
it checks that no DataLoader worker outlives the trainer and that
``last_checkpoint`` names a complete checkpoint, then resumes with
``--resume``. The kills target ``--kills`` iterations drawn uniformly
(sorted; the first iteration of a run includes its start-up), each at a
moment drawn uniformly within it or, for ``--write-kills`` of the kills,
the moment the checkpoint of that iteration is being written. Finally the
weights of the last checkpoint of both runs are compared tensor by tensor.

CPU only, minutes on 2 cores (not part of the test suite). Needs the
synthetic data set::

    python tools/dataset_converters/generate_synthetic_panoptic.py \\
        --out-dir data/synthetic_coco_panoptic
    python tools/analysis_tools/chaos_resume.py --kills 5

The report (also written to ``<work-dir>/chaos_report.json``) lists every
kill and the comparison; the exit status is 0 only if the final weights are
bitwise equal and nothing went wrong on the way.
"""
import argparse
import json
import os
import os.path as osp
import random
import re
import signal
import subprocess
import sys
import time
from typing import Dict, List, Set

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CONFIG = '''
_base_ = '{base}'
data_root = '{data_root}/'
train_dataloader = dict(
    batch_size={batch_size}, num_workers={num_workers},
    persistent_workers={persistent},
    dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = [dict(
    type='OVCocoPanopticMetric',
    ann_file=data_root + 'annotations/panoptic_val2017.json',
    seg_prefix=data_root + 'annotations/panoptic_val2017/')]
test_evaluator = val_evaluator
train_cfg = dict(max_iters={max_iters}, val_interval={never},
                 dynamic_intervals=None)
param_scheduler = dict(end={max_iters},
                       milestones=[{max_iters} * 2 // 3, {max_iters} - 1])
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, save_best=None))
'''


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default='configs/fcclip_tiny_synthetic.py')
    parser.add_argument('--data-root', default='data/synthetic_coco_panoptic')
    parser.add_argument('--work-dir', default='work_dirs/chaos_resume')
    parser.add_argument('--kills', type=int, default=5)
    parser.add_argument('--max-iters', type=int, default=12)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--num-workers', type=int, default=1)
    parser.add_argument(
        '--write-kills',
        type=float,
        default=0.4,
        help='share of the kills aimed at a checkpoint write')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the kill schedule')
    return parser.parse_args()


def children(pid: int) -> List[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    kids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def start(config: str, work_dir: str, log: str,
          resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
           '--work-dir', work_dir]
    if resume:
        cmd.append('--resume')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONHASHSEED='0')
    with open(log, 'a') as out:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env=env)


def temporaries(work_dir: str) -> Set[str]:
    """SafeCheckpointRunner's temporary checkpoint files."""
    try:
        names = os.listdir(work_dir)
    except FileNotFoundError:
        return set()
    return {n for n in names if n.startswith('.iter_') and n.endswith('.tmp')}


def checkpoint_state(work_dir: str) -> Dict:
    """What a resume would find."""
    state = dict(last_checkpoint=None, complete=None, temporaries=[])
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            path = f.read().strip()
        state['last_checkpoint'] = osp.basename(path)
        state['complete'] = loadable(path)
    if osp.isdir(work_dir):
        state['temporaries'] = sorted(
            n for n in os.listdir(work_dir) if n.endswith('.tmp'))
    return state


def loadable(path: str) -> bool:
    from mmfcclip.engine.checkpoint import load_from_local_safe
    try:
        load_from_local_safe(path, map_location='cpu')
    except (OSError, ValueError) as error:
        print(f'  {path}: {error}')
        return False
    return True


def completed(work_dir: str) -> int:
    """The iteration of ``last_checkpoint`` (0 when there is none)."""
    last = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(last):
        return 0
    with open(last) as f:
        match = re.search(r'iter_(\d+)\.pth$', f.read().strip())
    return int(match.group(1)) if match else 0


def iteration_timing(ref_dir: str, duration: float):
    """Seconds per training iteration and of start-up, from the
    reference run's log."""
    times = []
    for dirpath, _, names in os.walk(ref_dir):
        for name in names:
            if name.endswith('.log'):
                with open(osp.join(dirpath, name)) as f:
                    times += [float(t) for t in re.findall(
                        r'Iter\(train\).*?\stime: ([\d.]+)', f.read())]
    if not times:
        sys.exit(f'no iteration times in the logs of {ref_dir}')
    per_iter = sorted(times)[len(times) // 2]
    return per_iter, max(duration - sum(times), per_iter)


def final_weights(work_dir: str, max_iters: int):
    import torch
    path = osp.join(work_dir, f'iter_{max_iters}.pth')
    return torch.load(path, map_location='cpu',
                      weights_only=False)['state_dict']


def compare(a, b) -> Dict:
    import torch
    keys = sorted(set(a) | set(b))
    equal = [k for k in keys if k in a and k in b and torch.equal(a[k], b[k])]
    diffs = [(a[k].double() - b[k].double()).abs().max().item() for k in keys
             if k in a and k in b and a[k].shape == b[k].shape
             and a[k].is_floating_point()]
    return dict(tensors=len(keys), bitwise_equal=len(equal),
                max_abs_diff=max(diffs) if diffs else 0.0)


def main() -> int:
    args = parse_args()
    rng = random.Random(args.seed)
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    data_root = osp.abspath(args.data_root)
    if not osp.isdir(data_root):
        sys.exit(f'{data_root} does not exist: run tools/dataset_converters/'
                 'generate_synthetic_panoptic.py first.')
    config = osp.join(work, 'chaos_cfg.py')
    with open(config, 'w') as f:
        f.write(CONFIG.format(
            base=osp.join(ROOT, args.config), data_root=data_root,
            batch_size=args.batch_size, num_workers=args.num_workers,
            persistent=args.num_workers > 0, max_iters=args.max_iters,
            never=args.max_iters * 10))

    ref_dir, chaos_dir = osp.join(work, 'reference'), osp.join(work, 'chaos')
    log = osp.join(work, 'chaos.log')
    report = dict(command=' '.join([sys.executable] + sys.argv),
                  config=args.config, max_iters=args.max_iters,
                  kills=[], problems=[])

    timing = osp.join(ref_dir, 'duration_s')
    if not osp.isfile(osp.join(ref_dir, f'iter_{args.max_iters}.pth')):
        began = time.time()
        proc = start(config, ref_dir, log, resume=False)
        if proc.wait() != 0:
            sys.exit(f'the reference run failed, see {log}')
        with open(timing, 'w') as f:
            f.write(f'{time.time() - began:.1f}')
    with open(timing) as f:
        duration = report['reference_s'] = float(f.read())

    per_iter, startup = iteration_timing(ref_dir, duration)
    report['reference_iteration_s'] = round(per_iter, 2)
    aimed = set(rng.sample(range(args.kills),
                           round(args.kills * args.write_kills)))
    # Spread over the run: the k-th kill targets the k-th of N iterations
    # drawn uniformly (a resume restarts before its target).
    targets = sorted(rng.randint(1, args.max_iters)
                     for _ in range(args.kills))
    kills, runs = 0, 0
    began = time.time()
    while kills < args.kills:
        runs += 1
        done = completed(chaos_dir)
        if done >= args.max_iters:
            report['finished_early'] = True
            break
        # The iteration during which to kill; the first one of a run
        # includes the start-up (model, data, resume).
        target = max(targets[kills], done + 1)
        aim_at_write = kills in aimed
        # left by an earlier kill: not a write of this run
        stale = temporaries(chaos_dir)
        proc = start(config, chaos_dir, log, resume=True)
        started = time.time()
        killed, seen_workers, deadline = None, set(), None
        while proc.poll() is None:
            seen_workers.update(children(proc.pid))
            if deadline is None and (target == done + 1 or osp.isfile(
                    osp.join(chaos_dir, f'iter_{target - 1}.pth'))):
                span = per_iter + (startup if target == done + 1 else 0)
                deadline = time.time() + rng.uniform(0, span)
            tmp = next(iter(temporaries(chaos_dir) - stale), None)
            if aim_at_write:
                # the checkpoint of the target iteration, mid-write
                fire = tmp is not None and tmp.startswith(f'.iter_{target}.')
            else:
                fire = deadline is not None and time.time() >= deadline
            if fire:
                proc.kill()
                killed = dict(target_iteration=target, during_write=tmp,
                              after_s=round(time.time() - started, 2))
                break
            time.sleep(0.001 if aim_at_write else 0.02)
        proc.wait()
        if killed is None:  # finished before the kill
            if proc.returncode != 0:
                report['problems'].append(
                    f'run {runs} failed with {proc.returncode}, see {log}')
                break
            report['finished_early'] = True
            break
        kills += 1
        time.sleep(0.5)
        survivors = [p for p in seen_workers if alive(p)]
        deadline = time.time() + 10
        while survivors and time.time() < deadline:
            time.sleep(0.2)
            survivors = [p for p in survivors if alive(p)]
        killed.update(checkpoint_state(chaos_dir),
                      workers=len(seen_workers), orphans=survivors)
        if survivors:
            report['problems'].append(f'kill {kills}: orphaned workers '
                                      f'{survivors}')
            for pid in survivors:
                os.kill(pid, signal.SIGKILL)
        if killed['last_checkpoint'] and not killed['complete']:
            report['problems'].append(
                f'kill {kills}: last_checkpoint '
                f'{killed["last_checkpoint"]} cannot be loaded')
        report['kills'].append(killed)
        print(f'kill {kills}: {killed}', flush=True)

    if not report['problems']:
        proc = start(config, chaos_dir, log, resume=True)
        if proc.wait() != 0:
            report['problems'].append(f'the final resume failed, see {log}')
    report['temporaries_left'] = sorted(temporaries(chaos_dir))
    report['chaos_s'] = round(time.time() - began, 1)
    report['runs'] = runs + 1
    if not report['problems']:
        report['weights'] = compare(
            final_weights(ref_dir, args.max_iters),
            final_weights(chaos_dir, args.max_iters))
        w = report['weights']
        if w['bitwise_equal'] != w['tensors']:
            report['problems'].append(
                f'{w["tensors"] - w["bitwise_equal"]} of {w["tensors"]} '
                f'final tensors differ (max |diff| {w["max_abs_diff"]:.3g})')
    with open(osp.join(work, 'chaos_report.json'), 'w') as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    return 1 if report['problems'] else 0


if __name__ == '__main__':
    sys.exit(main())
