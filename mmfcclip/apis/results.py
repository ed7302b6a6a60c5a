"""Predictions as plain dicts and files (JSON, COCO panoptic PNG), without
panopticapi.

mmdet's ``DetInferencer.pred2dict`` needs panopticapi for panoptic results
(not on PyPI) and names nothing. :func:`prediction_to_dict` keeps mmdet's
keys for instances and adds what an open-vocabulary user needs: the
vocabulary, each segment's class name, thing/stuff, score and area, and the
panoptic map in the COCO panoptic PNG format (segment ids 1..N, 0 = void,
``id = R + 256 G + 256^2 B``) with its ``segments_info``.

Schema (keys present only for the tasks the model predicted)::

    image, height, width            # file name (or null), original size
    thing_classes, stuff_classes    # the vocabulary, names as given
    segments_info: [                # panoptic, COCO panoptic style
      {id, category_id, category, isthing, score, area, bbox: [x, y, w, h]}]
    panoptic_seg_path | panoptic_seg  # the PNG written, or its RGB array
    labels, label_names, scores, isthing, areas,   # instances, best first
    bboxes: [[x1, y1, x2, y2]], masks: [{size: [h, w], counts: <RLE>}]
    semantic_classes: [{category_id, category, isthing, area}]
    semantic_seg_path | semantic_seg  # label PNG (uint8, or uint16 for
                                      # vocabularies of 255+ classes)
"""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import mmcv
import mmengine
import numpy as np
import pycocotools.mask as mask_util
import torch
from mmdet.evaluation import INSTANCE_OFFSET

from ..utils.panoptic_io import VOID, id2rgb

__all__ = ['prediction_vocabulary', 'prediction_to_dict']


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def prediction_vocabulary(
        sample,
        default_names: Sequence[str] = (),
        default_num_things: Optional[int] = None) -> Tuple[List[str], int]:
    """The class names and thing count a prediction was made with.

    Read from the predictions' metainfo (``label_names``,
    ``num_things_classes``; set by FC-CLIP), else the defaults (the model's
    ``dataset_meta``).

    Returns:
        tuple[list[str], int]: Class names (label order) and how many of
        them (the first ones) are things.
    """
    for key in ('pred_panoptic_seg', 'pred_sem_seg'):
        if key in sample:
            meta = getattr(sample, key).metainfo
            if meta.get('label_names') is not None:
                names = list(meta['label_names'])
                return names, int(meta.get('num_things_classes', 0))
    names = list(default_names)
    num_things = default_num_things
    if num_things is None:
        num_things = len(names)  # no split known: call them things
    return names, int(num_things)


def _bbox_xywh(mask: np.ndarray) -> List[int]:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return [0, 0, 0, 0]
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


def _panoptic(sample, names: List[str], num_things: int
              ) -> Tuple[np.ndarray, List[dict]]:
    pred = sample.pred_panoptic_seg
    pan = _np(pred.sem_seg)[0].astype(np.int64)
    meta = pred.metainfo
    offset = int(meta.get('instance_offset', INSTANCE_OFFSET))
    void = int(meta.get('ignore_index', len(names)))
    scores = {
        int(s['id']): float(s['score'])
        for s in meta.get('segments_info', []) if 'score' in s
    }
    labels_map = pan % offset
    is_void = (pan == void) | (labels_map == len(names))
    keys, inverse, areas = np.unique(
        np.where(is_void, -1, pan), return_inverse=True, return_counts=True)
    # COCO panoptic ids: 1..N in map order, VOID (0) for unlabelled pixels
    seg_ids = np.where(keys == -1, VOID, np.cumsum(keys != -1))
    id_map = seg_ids[inverse.reshape(pan.shape)]
    segments = []
    for key, seg_id, area in zip(keys.tolist(), seg_ids.tolist(),
                                 areas.tolist()):
        if key == -1:
            continue
        label = key % offset
        segments.append(
            dict(
                id=int(seg_id),
                category_id=int(label),
                category=names[label] if label < len(names) else
                f'class {label}',
                isthing=bool(label < num_things),
                score=scores.get(key),
                area=int(area),
                bbox=_bbox_xywh(id_map == seg_id)))
    return id_map, segments


def _instances(sample, names: List[str], num_things: int) -> dict:
    inst = sample.pred_instances
    labels = _np(inst.labels).astype(np.int64)
    scores = (_np(inst.scores).astype(float) if 'scores' in inst else
              np.ones(len(labels)))
    order = np.argsort(-scores, kind='stable')
    label_names = (list(inst.label_names) if 'label_names' in inst else [
        names[lb] if lb < len(names) else f'class {lb}' for lb in labels
    ])
    result = dict(
        labels=[int(labels[i]) for i in order],
        label_names=[label_names[i] for i in order],
        scores=[float(scores[i]) for i in order],
        isthing=[bool(labels[i] < num_things) for i in order])
    masks = _np(inst.masks).astype(bool) if 'masks' in inst else None
    if 'bboxes' in inst:
        bboxes = _np(inst.bboxes).astype(float)
        result['bboxes'] = [[round(float(v), 2) for v in bboxes[i]]
                            for i in order]
    if masks is not None:
        result['areas'] = [int(masks[i].sum()) for i in order]
        rles = []
        for i in order:
            rle = mask_util.encode(
                np.asfortranarray(masks[i][:, :, None].astype(np.uint8)))[0]
            rles.append(dict(size=[int(v) for v in rle['size']],
                             counts=rle['counts'].decode()))
        result['masks'] = rles
    return result


def _semantic(sample, names: List[str], num_things: int
              ) -> Tuple[np.ndarray, List[dict]]:
    pred = sample.pred_sem_seg
    sem = _np(pred.sem_seg if 'sem_seg' in pred else pred.data)[0]
    ignore = int(pred.metainfo.get('ignore_index', 255))
    keys, areas = np.unique(sem, return_counts=True)
    classes = [
        dict(category_id=int(k),
             category=names[k] if k < len(names) else f'class {k}',
             isthing=bool(k < num_things),
             area=int(a)) for k, a in zip(keys.tolist(), areas.tolist())
        if k != ignore
    ]
    return sem.astype(np.int64), classes


def prediction_to_dict(sample,
                       default_names: Sequence[str] = (),
                       default_num_things: Optional[int] = None,
                       pred_out_dir: str = '',
                       stem: Optional[str] = None) -> dict:
    """One prediction as a dict; optionally written to ``pred_out_dir``.

    Args:
        sample (DetDataSample): A prediction (``pred_panoptic_seg``,
            ``pred_instances``, ``pred_sem_seg`` as predicted).
        default_names (Sequence[str]): Class names when the prediction
            carries none (non-FC-CLIP models).
        default_num_things (int, optional): Their thing count.
        pred_out_dir (str): If set, write
            ``<pred_out_dir>/preds/<stem>.json``,
            ``<stem>_panoptic_seg.png`` and ``<stem>_semantic_seg.png``.
        stem (str, optional): File stem; defaults to the image's.

    Returns:
        dict: See the module docstring. Without ``pred_out_dir`` the maps
        are returned as arrays (``panoptic_seg``: COCO RGB, uint8;
        ``semantic_seg``: labels), as mmdet's inferencer does.
    """
    names, num_things = prediction_vocabulary(sample, default_names,
                                              default_num_things)
    img_path = sample.metainfo.get('img_path')
    if stem is None:
        stem = (osp.splitext(osp.basename(img_path))[0]
                if img_path else 'image')
    ori_shape = sample.metainfo.get('ori_shape')
    result = dict(
        image=osp.basename(img_path) if img_path else None,
        height=int(ori_shape[0]) if ori_shape else None,
        width=int(ori_shape[1]) if ori_shape else None,
        thing_classes=names[:num_things],
        stuff_classes=names[num_things:])
    save = bool(pred_out_dir)
    out = osp.join(pred_out_dir, 'preds') if save else ''
    if save:
        mmengine.mkdir_or_exist(out)
    if 'pred_panoptic_seg' in sample:
        id_map, segments = _panoptic(sample, names, num_things)
        result['segments_info'] = segments
        rgb = id2rgb(id_map)
        if save:
            path = osp.join(out, f'{stem}_panoptic_seg.png')
            mmcv.imwrite(rgb[..., ::-1], path)
            result['panoptic_seg_path'] = path
        else:
            result['panoptic_seg'] = rgb
    if 'pred_instances' in sample:
        result.update(_instances(sample, names, num_things))
    if 'pred_sem_seg' in sample:
        sem, classes = _semantic(sample, names, num_things)
        result['semantic_classes'] = classes
        dtype = np.uint8 if max(len(names), int(sem.max(initial=0))) < 255 \
            else np.uint16
        if save:
            path = osp.join(out, f'{stem}_semantic_seg.png')
            mmcv.imwrite(sem.astype(dtype), path)
            result['semantic_seg_path'] = path
        else:
            result['semantic_seg'] = sem.astype(dtype)
    if save:
        mmengine.dump(result, osp.join(out, f'{stem}.json'), indent=1)
    return result
