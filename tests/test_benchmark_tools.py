"""The speed tools: stage profile, saved outputs, version comparison, and
the blocked argmax and deformable sampling they measured."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import \
    multi_scale_deformable_attn_pytorch

from mmfcclip.models.layers.ms_deform_attn import deformable_sampling_chunked
from mmfcclip.models.utils import chunked_argmax

from _scripts import load_script

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.mark.parametrize('chunk_bytes', [1, 5000, 60000, 2**30])
def test_blocked_deformable_sampling_is_bitwise_mmcvs(chunk_bytes):
    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor([[5, 7], [10, 14], [20, 28]])
    n = int(shapes.prod(1).sum())
    value = torch.randn(2, n, 4, 8, generator=g)
    # locations partly outside [0, 1] (zero padding)
    loc = torch.rand(2, n, 4, 3, 2, 2, generator=g) * 1.2 - 0.1
    weights = torch.rand(2, n, 4, 3, 2, generator=g)
    ref = multi_scale_deformable_attn_pytorch(value, shapes, loc, weights)
    out = deformable_sampling_chunked(value, shapes, loc, weights,
                                      chunk_bytes)
    assert torch.equal(out, ref)


@pytest.mark.parametrize('chunk', [0, 1, 3, 7, 50])
def test_chunked_argmax_equals_argmax_with_ties_and_nan(chunk):
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (23, 9, 11), generator=g).float()  # ties
    scores[5, 0, :3] = float('nan')
    scores[17, 0, 2:5] = float('nan')
    labels = chunked_argmax(lambda a, b: scores[a:b], 23, chunk)
    assert torch.equal(labels, scores.argmax(0))


def _run(args, cwd=ROOT):
    proc = subprocess.run([sys.executable, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index('{'):])


@pytest.mark.slow
def test_benchmark_stages_and_version_comparison(tmp_path):
    """benchmark_fcclip.py --stages accounts for the whole forward and saves
    the predictions; compare_versions.py, with this tree as its own
    baseline, finds identical outputs and refuses a tree that is not one."""
    out = tmp_path / 'pred.pt'
    report = _run([
        'tools/analysis_tools/benchmark_fcclip.py',
        'configs/fcclip_tiny_synthetic.py', '--size', '64', '64',
        '--repeats', '1', '--warmup', '1', '--stages', '--save-outputs',
        str(out)
    ])
    stages = report['stages']
    assert {'backbone', 'pixel_decoder', 'transformer_decoder',
            'post_processing', 'other'} <= set(stages)
    total = sum(s['wall_s'] for s in stages.values())
    assert total == pytest.approx(report['forward_s_median'], abs=0.01)
    pred = torch.load(out)
    assert pred['panoptic'].shape[-2:] == (64, 64)
    assert pred['semantic'].shape[-2:] == (64, 64)
    assert osp.realpath(report['mmfcclip_source']).startswith(
        osp.realpath(ROOT))

    summary = _run([
        'tools/analysis_tools/compare_versions.py', '--baseline', ROOT,
        '--rounds', '1', '--', 'configs/fcclip_tiny_synthetic.py',
        '--size', '64', '64', '--repeats', '1'
    ])
    assert set(summary['output_differences']) == set(pred)
    for key, diff in summary['output_differences'].items():
        assert diff.startswith('0.00e+00') or diff.endswith('0.00e+00'), (
            key, diff)
    proc = subprocess.run([
        sys.executable, 'tools/analysis_tools/compare_versions.py',
        '--baseline', str(tmp_path), '--', 'configs/fcclip_tiny_synthetic.py'
    ], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert 'is not an mmfcclip source tree' in proc.stderr


def test_vocabulary_benchmark_times_the_classifier_against_the_reference(
        monkeypatch, capsys):
    """--vocabulary mode: a fresh OVTextClassifier on a whole vocabulary
    against open_clip's full-context encode_text, same classifier rows."""
    import types

    import mmfcclip.vocabularies
    from mmfcclip.models.utils import OpenVocabulary

    # 'sky' repeats in two classes: encoded once, used twice
    vocab = OpenVocabulary(('person,man', 'red car'),
                           ('sky', 'cloudy sky,sky'))
    monkeypatch.setattr(mmfcclip.vocabularies, 'official_open_vocabulary',
                        lambda name: vocab)
    bench = load_script('tools/analysis_tools/benchmark_text_encoder.py')
    args = types.SimpleNamespace(device='cpu', warmup=0, chunk=8)
    result = bench.bench_vocabulary('RN50', 'tiny', args)
    assert (result['classes'], result['synonyms']) == (4, 6)
    assert result['prompts'] == 6 * 14
    assert result['encoded_prompts'] == 5 * 14  # distinct synonyms only
    assert result['max_rel_diff'] < 1e-5
    assert result['seconds']['reference'] > 0
    assert json.loads(capsys.readouterr().out)['classifier_s'] >= 0


def test_resize_difference_tool():
    """tools/analysis_tools/resize_difference.py: the official output size
    (short side, long side capped) and the cv2-vs-PIL difference: none on
    a constant image, large on a fine pattern shrunk 3x (PIL averages, cv2
    bilinear samples)."""
    import numpy as np
    tool = load_script('tools/analysis_tools/resize_difference.py')
    assert tool.output_size(480, 640, 800, 1333) == (800, 1067)
    assert tool.output_size(3000, 4000, 1024, 2560) == (1024, 1365)
    assert tool.output_size(100, 1000, 800, 1333) == (133, 1333)
    flat = np.full((60, 80, 3), 97, np.uint8)
    result = tool.resize_difference(flat, 120, 1333)
    assert result['resized'] == [120, 160] and result['max'] == 0
    checker = np.indices((300, 300)).sum(0) % 2 * 255
    checker = np.repeat(checker[..., None], 3, axis=2).astype(np.uint8)
    result = tool.resize_difference(checker, 100, 1333)
    # shrunk 3x: PIL averages 3x3 blocks (~113 or ~142), cv2 samples one
    # source pixel (0 or 255)
    assert result['mean'] > 60 and result['frac_over_8'] > 0.5
