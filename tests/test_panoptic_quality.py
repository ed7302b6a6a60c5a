"""Tests of mmfcclip's panopticapi-free Panoptic Quality code.

Expected values are derived by hand from the PQ definition (Kirillov et al.,
"Panoptic Segmentation"): per category
PQ = sum(IoU of TP) / (TP + FP/2 + FN/2), SQ = sum(IoU)/TP,
RQ = TP / (TP + FP/2 + FN/2), and a match needs IoU > 0.5.
"""
import numpy as np
import pytest

from mmfcclip.evaluation.functional import (OFFSET, VOID, PQStat, id2rgb,
                                            pq_compute_single_image, rgb2id)

THING, STUFF = 1, 0
CATEGORIES = {
    1: dict(id=1, name='person', isthing=THING),
    2: dict(id=2, name='car', isthing=THING),
    7: dict(id=7, name='sky', isthing=STUFF),
}


def random_panoptic(rng: np.random.Generator, shape=(40, 48), num_rects=6):
    """A random id map: a sky background plus random thing rectangles
    (later ones paint over earlier ones), random 24-bit ids.

    Returns:
        tuple: id map (H, W) and the segments ``{id, category_id,
        iscrowd}`` actually visible in it.
    """
    ids = rng.choice(np.arange(1, OFFSET), size=num_rects + 1, replace=False)
    pan = np.full(shape, ids[0], dtype=np.int64)
    cats = {int(ids[0]): 7}
    h, w = shape
    for seg_id in ids[1:]:
        y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
        y1, x1 = y0 + rng.integers(3, h // 2), x0 + rng.integers(3, w // 2)
        pan[y0:y1, x0:x1] = seg_id
        cats[int(seg_id)] = int(rng.choice([1, 2]))
    present = np.unique(pan)
    segments = [
        dict(id=int(i), category_id=cats[int(i)], iscrowd=0) for i in present
    ]
    return pan, segments


def relabel(pan, segments, rng):
    """The same segmentation under fresh random ids (ids are arbitrary)."""
    old = np.array([s['id'] for s in segments])
    new = rng.choice(np.arange(1, OFFSET), size=len(old), replace=False)
    lut = dict(zip(old.tolist(), new.tolist()))
    out = np.vectorize(lambda v: lut.get(v, VOID))(pan)
    new_segments = [
        dict(id=lut[s['id']], category_id=s['category_id']) for s in segments
    ]
    return out, new_segments


def summary(pq_stat, isthing=None):
    return pq_stat.pq_average(CATEGORIES, isthing=isthing)


def test_rgb2id_id2rgb_round_trip():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, OFFSET, size=(17, 23))
    rgb = id2rgb(ids)
    assert rgb.dtype == np.uint8 and rgb.shape == (17, 23, 3)
    np.testing.assert_array_equal(rgb2id(rgb), ids)
    # Channel order is R + 256 G + 256^2 B.
    assert rgb2id([1, 2, 3]) == 1 + 2 * 256 + 3 * 256 * 256
    assert id2rgb(1 + 2 * 256 + 3 * 256 * 256) == [1, 2, 3]
    # uint8 input must not overflow.
    white = np.full((2, 2, 3), 255, dtype=np.uint8)
    assert (rgb2id(white) == OFFSET - 1).all()


def test_perfect_prediction():
    rng = np.random.default_rng(1)
    pan, segments = random_panoptic(rng)
    pred, pred_segments = relabel(pan, segments, rng)
    stat = pq_compute_single_image(pan, pred, segments, pred_segments,
                                   CATEGORIES)
    result, per_class = summary(stat)
    assert result == dict(pq=1.0, sq=1.0, rq=1.0, n=result['n'])
    assert result['n'] == len({s['category_id'] for s in segments})
    for cat in {s['category_id'] for s in segments}:
        assert per_class[cat] == dict(pq=1.0, sq=1.0, rq=1.0)
        assert stat[cat].fp == stat[cat].fn == 0


def test_one_missed_segment():
    # 6x6 image: sky everywhere, two persons (ids 11, 12) and one car (21).
    pan = np.full((6, 6), 5)
    pan[0:2, 0:2] = 11
    pan[4:6, 4:6] = 12
    pan[0:2, 4:6] = 21
    segments = [
        dict(id=5, category_id=7),
        dict(id=11, category_id=1),
        dict(id=12, category_id=1),
        dict(id=21, category_id=2)
    ]
    # The prediction is exact but misses person 12 (predicted as nothing).
    pred = pan.copy()
    pred[pred == 12] = VOID
    pred_segments = [s for s in segments if s['id'] != 12]
    stat = pq_compute_single_image(pan, pred, segments, pred_segments,
                                   CATEGORIES)
    # person: TP=1 (IoU 1), FN=1 -> PQ = RQ = 1 / (1 + 0.5) = 2/3, SQ = 1.
    # car, sky: PQ = 1. Mean PQ over 3 categories = (2/3 + 1 + 1) / 3 = 8/9.
    # Things: (2/3 + 1) / 2 = 5/6. Stuff: 1.
    assert (stat[1].tp, stat[1].fp, stat[1].fn) == (1, 0, 1)
    result, per_class = summary(stat)
    assert per_class[1]['pq'] == pytest.approx(2 / 3)
    assert per_class[1]['sq'] == pytest.approx(1.0)
    assert per_class[1]['rq'] == pytest.approx(2 / 3)
    assert result['pq'] == pytest.approx(8 / 9)
    assert result['sq'] == pytest.approx(1.0)
    assert result['rq'] == pytest.approx(8 / 9)
    assert summary(stat, True)[0]['pq'] == pytest.approx(5 / 6)
    assert summary(stat, False)[0]['pq'] == pytest.approx(1.0)


@pytest.mark.parametrize('covered, matched', [(4, False), (5, True)])
def test_iou_half_is_not_a_match(covered, matched):
    # GT person = first 8 pixels of row 0 (row 1 is sky). The predicted
    # person covers ``covered`` of them, the rest of row 0 is predicted sky.
    # IoU = covered / 8: exactly 0.5 for 4 (no match), 0.625 for 5.
    pan = np.full((2, 8), 5)
    pan[0] = 11
    pred = np.full((2, 8), 50)
    pred[0, :covered] = 60
    segments = [dict(id=5, category_id=7), dict(id=11, category_id=1)]
    pred_segments = [dict(id=50, category_id=7), dict(id=60, category_id=1)]
    stat = pq_compute_single_image(pan, pred, segments, pred_segments)
    if matched:
        assert (stat[1].tp, stat[1].fp, stat[1].fn) == (1, 0, 0)
        assert stat[1].iou == pytest.approx(covered / 8)
    else:
        assert (stat[1].tp, stat[1].fp, stat[1].fn) == (0, 1, 1)
        assert stat[1].iou == 0
    # Sky: GT 8 px, predicted 16 - covered px, all 8 GT px included:
    # IoU = 8 / (16 - covered) = 2/3 or 8/11, both > 0.5.
    assert stat[7].tp == 1
    assert stat[7].iou == pytest.approx(8 / (16 - covered))


def test_void_is_ignored():
    # Rows 0-1 are VOID in the GT, row 2 a GT person (8 px), row 3 sky.
    pan = np.zeros((4, 8), dtype=np.int64)
    pan[2] = 11
    pan[3] = 5
    segments = [dict(id=11, category_id=1), dict(id=5, category_id=7)]
    # The predicted person covers rows 0-2 but two pixels (22 px, 14 on
    # VOID). Without the void rule IoU = 8 / 22 (no match); VOID pixels
    # leave the union, so IoU = 8 / (8 + 22 - 8 - 14) = 1. The predicted car
    # (2 px) lies entirely on VOID, so it is not a FP.
    pred = np.full((4, 8), 5)
    pred[0:3] = 60
    pred[0, 6:] = 70
    pred_segments = [
        dict(id=60, category_id=1),
        dict(id=70, category_id=2),
        dict(id=5, category_id=7)
    ]
    stat = pq_compute_single_image(pan, pred, segments, pred_segments)
    assert (stat[1].tp, stat[1].fp, stat[1].fn) == (1, 0, 0)
    assert stat[1].iou == pytest.approx(1.0)
    assert (stat[2].tp, stat[2].fp, stat[2].fn) == (0, 0, 0)
    result, _ = summary(stat)
    assert result['pq'] == pytest.approx(1.0) and result['n'] == 2


def test_void_majority_rule():
    # A predicted car with 3 of its 5 pixels on VOID is ignored (3/5 > 0.5),
    # one with 2 of 4 on VOID is a FP (2/4 is not > 0.5).
    pan = np.full((2, 10), 5)
    pan[0, 0:3] = VOID
    pan[1, 0:2] = VOID
    pred = np.full((2, 10), 50)
    pred[0, 0:5] = 60
    pred[1, 0:4] = 70
    segments = [dict(id=5, category_id=7)]
    pred_segments = [
        dict(id=50, category_id=7),
        dict(id=60, category_id=2),
        dict(id=70, category_id=2)
    ]
    stat = pq_compute_single_image(pan, pred, segments, pred_segments)
    assert (stat[2].tp, stat[2].fp, stat[2].fn) == (0, 1, 0)


def test_crowd_regions():
    # Columns 0-3: a crowd of persons; 4-7: a GT person; 8-11: sky.
    pan = np.full((4, 12), 5)
    pan[:, 0:4] = 30
    pan[:, 4:8] = 11
    segments = [
        dict(id=30, category_id=1, iscrowd=1),
        dict(id=11, category_id=1, iscrowd=0),
        dict(id=5, category_id=7, iscrowd=0)
    ]
    # A person predicted over 3 crowd columns plus 1 sky pixel (12 of its
    # 13 px on the crowd) is not a FP; a car predicted on the last crowd
    # column is a FP (the crowd is of another category); the crowd itself is
    # never FN.
    pred = pan.copy()
    pred[:, 0:3] = 60
    pred[:, 3] = 70
    pred[0, 8] = 60
    pred_segments = [
        dict(id=60, category_id=1),
        dict(id=70, category_id=2),
        dict(id=11, category_id=1),
        dict(id=5, category_id=7)
    ]
    stat = pq_compute_single_image(pan, pred, segments, pred_segments)
    assert (stat[1].tp, stat[1].fp, stat[1].fn) == (1, 0, 0)
    assert (stat[2].tp, stat[2].fp, stat[2].fn) == (0, 1, 0)
    # Sky: GT 16 px, prediction 15 px inside it: IoU 15/16.
    assert stat[7].tp == 1 and stat[7].iou == pytest.approx(15 / 16)


def naive_pq(pan, pred, segments, pred_segments):
    """Per-segment boolean-mask implementation of the PQ matching rules."""
    stat = PQStat()
    crowd = [s for s in segments if s.get('iscrowd', 0) == 1]
    gt_matched, pred_matched = set(), set()
    for g in segments:
        if g.get('iscrowd', 0) == 1:
            continue
        gmask = pan == g['id']
        for p in pred_segments:
            if p['category_id'] != g['category_id']:
                continue
            pmask = pred == p['id']
            inter = (gmask & pmask).sum()
            union = (gmask | pmask).sum() - (pmask & (pan == VOID)).sum()
            if inter > 0 and inter / union > 0.5:
                stat[g['category_id']].tp += 1
                stat[g['category_id']].iou += inter / union
                gt_matched.add(g['id'])
                pred_matched.add(p['id'])
    for g in segments:
        if g['id'] not in gt_matched and g.get('iscrowd', 0) == 0:
            stat[g['category_id']].fn += 1
    for p in pred_segments:
        if p['id'] in pred_matched:
            continue
        pmask = pred == p['id']
        ignored = (pmask & (pan == VOID)).sum()
        for c in crowd:
            if c['category_id'] == p['category_id']:
                ignored += (pmask & (pan == c['id'])).sum()
        if ignored / pmask.sum() <= 0.5:
            stat[p['category_id']].fp += 1
    return stat


@pytest.mark.parametrize('seed', range(8))
def test_matches_naive_implementation_on_random_maps(seed):
    rng = np.random.default_rng(100 + seed)
    pan, segments = random_panoptic(rng, num_rects=8)
    # Some VOID pixels and one crowd segment in the GT.
    pan[rng.random(pan.shape) < 0.05] = VOID
    pan[rng.integers(0, 30):, :rng.integers(1, 10)] = VOID
    present = set(np.unique(pan).tolist())
    segments = [s for s in segments if s['id'] in present]
    things = [s for s in segments if s['category_id'] != 7]
    if things:
        things[rng.integers(len(things))]['iscrowd'] = 1
    # Prediction: the GT shifted by a random offset, with random class
    # flips, random noise and fresh ids.
    pred, pred_segments = relabel(pan, segments, rng)
    pred = np.roll(pred, rng.integers(-3, 4, size=2), axis=(0, 1))
    noise = rng.random(pred.shape) < 0.1
    pred[noise] = rng.choice([s['id'] for s in pred_segments],
                             size=noise.sum())
    for s in pred_segments:
        if s['category_id'] != 7 and rng.random() < 0.3:
            s['category_id'] = 3 - s['category_id']
    present = set(np.unique(pred).tolist())
    pred_segments = [s for s in pred_segments if s['id'] in present]

    stat = pq_compute_single_image(pan, pred, segments, pred_segments,
                                   CATEGORIES)
    expected = naive_pq(pan, pred, segments, pred_segments)
    for cat in CATEGORIES:
        got, exp = stat[cat], expected[cat]
        assert (got.tp, got.fp, got.fn) == (exp.tp, exp.fp, exp.fn)
        assert got.iou == pytest.approx(exp.iou)


def test_pq_stat_merge_and_average():
    a, b = PQStat(), PQStat()
    a[1].tp, a[1].iou, a[1].fn = 2, 1.5, 1
    b[1].tp, b[1].iou, b[1].fp = 1, 0.9, 2
    b[7].tp, b[7].iou = 1, 0.8
    a += b
    assert (a[1].tp, a[1].fp, a[1].fn) == (3, 2, 1)
    assert a[1].iou == pytest.approx(2.4)
    # person: PQ = 2.4 / (3 + 1 + 0.5) = 2.4 / 4.5, SQ = 0.8, RQ = 3 / 4.5.
    # sky: PQ = SQ = 0.8, RQ = 1. car never occurs: not averaged.
    result, per_class = a.pq_average(CATEGORIES, isthing=None)
    assert result['n'] == 2
    assert per_class[1]['pq'] == pytest.approx(2.4 / 4.5)
    assert per_class[1]['sq'] == pytest.approx(0.8)
    assert per_class[1]['rq'] == pytest.approx(3 / 4.5)
    assert per_class[2] == dict(pq=0.0, sq=0.0, rq=0.0)
    assert result['pq'] == pytest.approx((2.4 / 4.5 + 0.8) / 2)
    assert result['rq'] == pytest.approx((3 / 4.5 + 1) / 2)
    things, _ = a.pq_average(CATEGORIES, isthing=True)
    assert things['n'] == 1 and things['sq'] == pytest.approx(0.8)
    # The merged-in object is unchanged.
    assert (b[1].tp, b[1].fp) == (1, 2)
    # No stuff category occurs: zeros (panopticapi would divide by 0).
    c = PQStat()
    c[1].tp, c[1].iou = 1, 1.0
    assert c.pq_average(
        CATEGORIES, isthing=False)[0] == dict(
            pq=0.0, sq=0.0, rq=0.0, n=0)


def test_inconsistent_prediction_raises():
    pan = np.full((4, 4), 5)
    segments = [dict(id=5, category_id=7)]
    pred = np.full((4, 4), 50)
    with pytest.raises(KeyError, match='not in its segments'):
        pq_compute_single_image(pan, pred, segments, [])
    with pytest.raises(KeyError, match='not in its PNG'):
        pq_compute_single_image(
            pan, pred, segments,
            [dict(id=50, category_id=7),
             dict(id=51, category_id=7)])
    with pytest.raises(KeyError, match='unknown'):
        pq_compute_single_image(pan, pred, segments,
                                [dict(id=50, category_id=99)], CATEGORIES)
