"""Speed and outputs of this version of mmfcclip against another one, in
the same run.

Runs ``benchmark_fcclip.py`` (this tree's script) alternately with this
tree's and the baseline tree's ``mmfcclip`` and configs on the first
``PYTHONPATH`` entry, ``--rounds`` times, so that both versions see the
same machine load; reports the median forward time of each, their ratio,
per-stage medians (``--stages``) and the largest difference between the
two versions' predictions (same seed, so the same random weights).

The baseline is a source tree of another commit, e.g.::

    git worktree add /tmp/base <commit>
    python tools/analysis_tools/compare_versions.py --baseline /tmp/base \\
        -- configs/fcclip_convnext_l_coco.py --size 640 640 --repeats 2

Arguments after ``--`` go to ``benchmark_fcclip.py`` (the config path is
taken relative to each tree).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCHMARK = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_fcclip.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--baseline', required=True,
                        help='source tree of the version to compare with')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--out', help='write the report (JSON) here')
    parser.add_argument('benchmark_args', nargs=argparse.REMAINDER,
                        help='-- CONFIG [benchmark_fcclip.py options]')
    args = parser.parse_args()
    if args.benchmark_args[:1] == ['--']:
        args.benchmark_args = args.benchmark_args[1:]
    if not args.benchmark_args:
        parser.error('give the config and benchmark options after --')
    if not osp.isdir(osp.join(args.baseline, 'mmfcclip')):
        parser.error(f'{args.baseline} is not an mmfcclip source tree '
                     f'(no mmfcclip/ package in it)')
    return args


def run_once(tree: str, bench_args, outputs: str) -> dict:
    """One benchmark process with ``tree``'s mmfcclip and configs."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [tree] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    cmd = [sys.executable, BENCHMARK, *bench_args, '--save-outputs', outputs]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'benchmark failed in {tree} '
                           f'(exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    # the report is the last JSON object printed
    report = json.loads(proc.stdout[proc.stdout.rindex('\n{') + 1:]
                        if '\n{' in proc.stdout else proc.stdout)
    # each version must really have been imported from its own tree (an
    # installed copy earlier on sys.path would compare a version with
    # itself)
    source = osp.realpath(report.get('mmfcclip_source', ''))
    if not source.startswith(osp.realpath(tree) + os.sep):
        raise RuntimeError(f'the benchmark in {tree} imported mmfcclip from '
                           f'{source or "an unknown place"}, not from {tree}')
    return report


def max_differences(a: dict, b: dict) -> dict:
    import torch
    diffs = {}
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            diffs[key] = 'missing in one version'
        elif a[key].shape != b[key].shape:
            diffs[key] = f'shapes {tuple(a[key].shape)} vs ' \
                         f'{tuple(b[key].shape)}'
        elif a[key].numel() == 0:
            diffs[key] = 'empty in both versions'
        elif a[key].dtype == torch.bool or not a[key].is_floating_point():
            diffs[key] = f'{(a[key] != b[key]).float().mean().item():.2e} ' \
                         f'of elements differ'
        else:
            scale = a[key].abs().max().clamp(min=1e-12)
            diffs[key] = f'max relative difference ' \
                         f'{((a[key] - b[key]).abs().max() / scale).item():.2e}'
    return diffs


def main():
    args = parse_args()
    import torch
    trees = dict(baseline=osp.abspath(args.baseline), current=ROOT)
    reports = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, tree in trees.items():
                out = osp.join(tmp, f'{name}.pt')
                report = run_once(tree, args.benchmark_args, out)
                reports[name].append(report)
                print(f'round {r + 1}/{args.rounds} {name}: '
                      f'{report["forward_s_median"]} s', flush=True)
        outputs = {name: torch.load(osp.join(tmp, f'{name}.pt'))
                   for name in trees}
    summary = dict(command=' '.join(args.benchmark_args),
                   rounds=args.rounds)
    for name in trees:
        times = [t for rep in reports[name] for t in rep['forward_s_all']]
        summary[name] = dict(forward_s_median=round(
            statistics.median(times), 3), forward_s_all=times)
        stages = [rep['stages'] for rep in reports[name] if 'stages' in rep]
        if stages:
            summary[name]['stages_wall_s'] = {
                k: round(statistics.median(s[k]['wall_s'] for s in stages), 3)
                for k in stages[0]}
            summary[name]['stages_minor_faults'] = {
                k: int(statistics.median(s[k]['minor_faults']
                                         for s in stages))
                for k in stages[0]}
    summary['speedup'] = round(summary['baseline']['forward_s_median'] /
                               summary['current']['forward_s_median'], 3)
    summary['output_differences'] = max_differences(outputs['baseline'],
                                                    outputs['current'])
    for key in ('device_name', 'threads', 'torch', 'size'):
        summary[key] = reports['current'][0].get(key)
    text = json.dumps(summary, indent=1)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
