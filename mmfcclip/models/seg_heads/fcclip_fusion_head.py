import contextlib
from typing import Iterator, List, Optional

import torch
import torch.nn.functional as F
from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.mask import mask2bbox
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from ..utils import chunked_argmax
from .panoptic_segments import panoptic_inference


@MODELS.register_module()
class FCCLIPFusionHead(MaskFormerFusionHead):
    """FC-CLIP's panoptic, instance and semantic inference.

    Differences from mmdet's :class:`MaskFormerFusionHead`, all following
    the official ``FCCLIP.semantic_inference`` / ``panoptic_inference`` /
    ``instance_inference`` (``fcclip/fcclip.py``):

    - the class counts are those of the batch's vocabulary, passed to
      :meth:`predict` (mmdet's fixes them in the config);
    - semantic inference is implemented:
      ``sem[k] = sum_q softmax(cls_q)[k] * sigmoid(mask_q)``;
    - panoptic inference gives mmdet's :meth:`panoptic_postprocess` map
      with ``filter_low_score=True`` (a segment keeps only its assigned
      pixels with sigmoid >= 0.5, as the official code does), computed by
      :func:`.panoptic_segments.panoptic_inference`: one ``bincount`` per
      quantity instead of mmdet's four full-size passes per query (the
      speed-up is measured in docs/benchmarks.md; the equality with mmdet is
      tested). It gives the official segmentation; thing instance ids can
      be numbered differently (mmdet also counts a segment whose filtered
      mask is empty), which no metric reads;
    - instances are the top ``max_per_image`` (query, class) pairs over all
      classes when panoptic inference is off, things only when it is on
      (mmdet: always things only, and it fails when fewer than
      ``max_per_image`` pairs exist). Boxes are computed from the masks
      (mmdet convention; the official code writes zero boxes, so bbox AP
      differs, segm AP does not);
    - ``test_cfg.sem_seg_postprocess_before_inference`` (True by default,
      forced when panoptic or instance inference is on) chooses whether
      per-query masks are resized to the original image before inference,
      or the semantic score map after it.

    Panoptic output: ``class + instance_id * INSTANCE_OFFSET`` for things,
    ``class`` for stuff, ``num_classes`` (the vocabulary size) for void; a
    larger offset for vocabularies of 1,000+ classes, and the segments with
    their scores, in the metainfo (``instance_offset``, ``segments_info``).
    Semantic output: class indices in ``sem_seg`` (mmdet ``SemSegMetric``)
    and ``data`` (mmseg ``IoUMetric``).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # FC-CLIP's defaults where mmdet's panoptic_postprocess has others:
        # keep every non-void query (0.0, not 0.8) and drop a segment's
        # pixels with sigmoid < 0.5 (official panoptic_inference).
        self.test_cfg = dict(
            dict(object_mask_thr=0.0, filter_low_score=True),
            **(self.test_cfg or {}))

    @contextlib.contextmanager
    def _vocabulary(self, num_things_classes: Optional[int],
                    num_stuff_classes: Optional[int]) -> Iterator[None]:
        """Use the given class counts for the duration of one prediction.

        mmdet's :meth:`panoptic_postprocess` reads them from ``self``; they
        are restored afterwards so no vocabulary leaks into later calls.
        """
        saved = (self.num_things_classes, self.num_stuff_classes,
                 self.num_classes)
        if num_things_classes is not None:
            self.num_things_classes = num_things_classes
        if num_stuff_classes is not None:
            self.num_stuff_classes = num_stuff_classes
        self.num_classes = self.num_things_classes + self.num_stuff_classes
        try:
            yield
        finally:
            (self.num_things_classes, self.num_stuff_classes,
             self.num_classes) = saved

    def panoptic_postprocess(self,
                             mask_cls: Tensor,
                             mask_pred: Tensor,
                             mask_prob: Optional[Tensor] = None) -> PixelData:
        """mmdet's panoptic inference (same id map below 1,000 classes), plus
        the segments with their query scores in the metainfo and an
        instance offset that fits vocabularies of 1,000+ classes (see
        :mod:`.panoptic_segments`)."""
        return panoptic_inference(mask_cls, mask_pred,
                                  self.num_things_classes, self.num_classes,
                                  self.test_cfg, mask_prob)

    def semantic_scores(self, mask_cls: Tensor, mask_pred: Tensor) -> Tensor:
        """Per-class semantic scores (K, h, w), void removed after the
        softmax (official ``FCCLIP.semantic_inference``)."""
        probs = F.softmax(mask_cls, dim=-1)[:, :-1]
        return torch.einsum('qc,qhw->chw', probs, mask_pred.sigmoid())

    def semantic_postprocess(self,
                             mask_cls: Tensor,
                             mask_pred: Tensor,
                             mask_prob: Optional[Tensor] = None) -> PixelData:
        """Semantic segmentation of one image.

        Returns:
            PixelData: Labels (1, h, w) in both ``sem_seg`` and ``data``.
        """
        # Chunked over classes (zero-shot memory fix): same labels as
        # self._semantic_labels(self.semantic_scores(...)).
        return self._semantic_argmax(mask_cls, mask_pred, mask_prob=mask_prob)

    def _semantic_argmax(self,
                         mask_cls: Tensor,
                         mask_pred: Tensor,
                         resize=None,
                         mask_prob: Optional[Tensor] = None) -> PixelData:
        """Labels of :meth:`semantic_scores` (after ``resize`` of the
        score map, if given) without building the (K, h, w) score map.

        Added for the 847 / 459-class zero-shot benchmarks: at 800 x 1333,
        ADE-847's full score map alone is 3.4 GiB (and as much again once
        resized). Classes are scored ``test_cfg['semantic_chunk_size']``
        (default 128; 0 = all at once) at a time and reduced to a running
        maximum; each class's scores come from the same einsum and
        interpolation as before, and ties and NaNs resolve to the first
        class as ``argmax`` does, so the labels are those of the full map
        (bitwise-equal scores on CPU/MKL for chunks >= 32, tested; peak
        memory and time: tools/analysis_tools/semantic_inference_memory.py,
        docs/zero_shot.md).
        """
        probs = F.softmax(mask_cls, dim=-1)[:, :-1]
        sigmoid = mask_pred.sigmoid() if mask_prob is None else mask_prob

        def scores(start: int, end: int) -> Tensor:
            chunk = torch.einsum('qc,qhw->chw', probs[:, start:end], sigmoid)
            return chunk if resize is None else resize(chunk)

        labels = chunked_argmax(scores, probs.shape[1],
                                self.test_cfg.get('semantic_chunk_size', 128))
        labels = labels[None].to(torch.int64)
        return PixelData(
            sem_seg=labels,
            data=labels,
            metainfo=dict(ignore_index=self.test_cfg.get('ignore_index', 255)))

    def _semantic_labels(self, scores: Tensor) -> PixelData:
        labels = scores.argmax(dim=0)[None].to(torch.int64)
        return PixelData(
            sem_seg=labels,
            data=labels,
            metainfo=dict(ignore_index=self.test_cfg.get('ignore_index', 255)))

    def instance_postprocess(
            self,
            mask_cls: Tensor,
            mask_pred: Tensor,
            mask_prob: Optional[Tensor] = None) -> InstanceData:
        """Instance segmentation of one image (official
        ``FCCLIP.instance_inference``).

        Returns:
            InstanceData: ``masks``, ``scores``, ``labels``, ``bboxes``.
        """
        max_per_image = self.test_cfg.get('max_per_image', 100)
        things_only = self.test_cfg.get('panoptic_on', True)
        num_classes = self.num_classes
        scores = F.softmax(mask_cls, dim=-1)[:, :-1]
        k = min(max_per_image, scores.numel())
        top_scores, top_indices = scores.flatten().topk(k, sorted=False)
        labels = top_indices % num_classes
        query_indices = top_indices // num_classes
        if things_only:
            is_thing = labels < self.num_things_classes
            top_scores, labels = top_scores[is_thing], labels[is_thing]
            query_indices = query_indices[is_thing]
        binary = mask_pred[query_indices] > 0
        # mean sigmoid inside each mask, 16 masks at a time (the float
        # temporaries of all 100 masks are 0.5 GB at 640 x 640)
        mask_scores = []
        for start in range(0, len(query_indices), 16):
            index = query_indices[start:start + 16]
            probs = mask_pred[index].sigmoid() if mask_prob is None else \
                mask_prob[index]
            inside = binary[start:start + 16].float()
            mask_scores.append((probs * inside).flatten(1).sum(1) /
                               (inside.flatten(1).sum(1) + 1e-6))
        mask_scores = torch.cat(mask_scores) if mask_scores else \
            mask_pred.new_zeros(0)
        results = InstanceData()
        results.masks = binary
        results.bboxes = mask2bbox(binary)
        results.labels = labels
        results.scores = top_scores * mask_scores
        return results

    def predict(self,
                mask_cls_results: Tensor,
                mask_pred_results: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True,
                num_things_classes: Optional[int] = None,
                num_stuff_classes: Optional[int] = None,
                **kwargs) -> List[dict]:
        """Post-process a batch (the last decoder prediction).

        Args:
            mask_cls_results (Tensor): Class log-probabilities
                (B, Q, K + 1).
            mask_pred_results (Tensor): Mask logits at the padded input size
                (B, Q, H, W).
            batch_data_samples (list[DetDataSample]): Samples with
                ``img_shape`` and ``ori_shape``.
            rescale (bool): Return results at the original image size.
            num_things_classes (int, optional): Thing classes of the batch's
                vocabulary (labels ``[0, num_things_classes)``). Defaults to
                the configured count.
            num_stuff_classes (int, optional): Stuff classes of the batch's
                vocabulary. Defaults to the configured count.

        Returns:
            list[dict]: Per image, ``pan_results``, ``ins_results`` and
            ``sem_results`` as enabled by ``test_cfg``.
        """
        with self._vocabulary(num_things_classes, num_stuff_classes):
            return self._predict(mask_cls_results, mask_pred_results,
                                 batch_data_samples, rescale)

    def _predict(self, mask_cls_results: Tensor, mask_pred_results: Tensor,
                 batch_data_samples: SampleList,
                 rescale: bool) -> List[dict]:
        panoptic_on = self.test_cfg.get('panoptic_on', True)
        semantic_on = self.test_cfg.get('semantic_on', False)
        instance_on = self.test_cfg.get('instance_on', False)
        before = (self.test_cfg.get('sem_seg_postprocess_before_inference',
                                    True) or panoptic_on or instance_on)
        results = []
        for mask_cls, mask_pred, sample in zip(mask_cls_results,
                                               mask_pred_results,
                                               batch_data_samples):
            meta = sample.metainfo
            img_h, img_w = meta['img_shape'][:2]
            out_size = meta['ori_shape'][:2] if rescale else (img_h, img_w)
            result = dict()
            if not before:
                # Semantic-only configs: infer at the input resolution and
                # resize the score map (official FCCLIP.forward,
                # sem_seg_postprocess_before_inference False).
                # Chunked over classes (zero-shot memory fix); the same
                # labels as semantic_scores -> _crop_resize -> argmax.
                result['sem_results'] = self._semantic_argmax(
                    mask_cls, mask_pred, lambda scores: self._crop_resize(
                        scores, (img_h, img_w), out_size))
                results.append(result)
                continue
            mask_pred = self._crop_resize(mask_pred, (img_h, img_w),
                                          out_size)
            # One sigmoid of the (Q, H, W) masks serves all enabled tasks
            # (each computed its own before: 3 passes over ~0.4 GB at
            # 640 x 640); the same values, so the same results.
            mask_prob = mask_pred.sigmoid() if (
                panoptic_on + instance_on + semantic_on > 1) else None
            if panoptic_on:
                result['pan_results'] = self.panoptic_postprocess(
                    mask_cls, mask_pred, mask_prob)
            if instance_on:
                result['ins_results'] = self.instance_postprocess(
                    mask_cls, mask_pred, mask_prob)
            if semantic_on:
                result['sem_results'] = self.semantic_postprocess(
                    mask_cls, mask_pred, mask_prob)
            results.append(result)
        return results

    @staticmethod
    def _crop_resize(x: Tensor, img_size, out_size) -> Tensor:
        """Drop the padding, then resize bilinearly to ``out_size``."""
        x = x[:, :img_size[0], :img_size[1]]
        if tuple(x.shape[-2:]) != tuple(out_size):
            x = F.interpolate(
                x[None], size=tuple(out_size), mode='bilinear',
                align_corners=False)[0]
        return x
