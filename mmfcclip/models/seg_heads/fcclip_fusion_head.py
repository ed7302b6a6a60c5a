import contextlib
from typing import Callable, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from ..utils import chunked_argmax
from .instance_segments import InstanceAccumulator
from .panoptic_segments import (PanopticAccumulator, panoptic_inference,
                                queries_per_block)

# Largest block of per-query full-resolution maps that inference holds at a
# time: below glibc's largest mmap threshold (32 MiB), so the blocks are
# reused from the heap instead of being mapped and faulted in every time.
_BLOCK_BYTES = 16 * 2**20


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
      :class:`.panoptic_segments.PanopticAccumulator`: running reductions
      and one ``bincount`` per quantity instead of mmdet's four full-size
      passes per query (the speed-up is measured in docs/benchmarks.md; the
      equality with mmdet is tested). It gives the official segmentation;
      thing instance ids can be numbered differently (mmdet also counts a
      segment whose filtered mask is empty), which no metric reads;
    - instances are the top ``max_per_image`` (query, class) pairs over all
      classes when panoptic inference is off, things only when it is on
      (mmdet: always things only, and it fails when fewer than
      ``max_per_image`` pairs exist). Boxes are computed from the masks
      (mmdet convention; the official code writes zero boxes, so bbox AP
      differs, segm AP does not);
    - ``test_cfg.sem_seg_postprocess_before_inference`` (True by default,
      forced when panoptic or instance inference is on) chooses whether
      per-query masks are resized to the original image before inference,
      or the semantic score map after it;
    - :meth:`predict` takes the masks at stride 4 and upsamples them itself,
      a block of queries at a time, running every task on each block
      (:meth:`_infer`); mmdet's ``MaskFormer.predict`` upsamples all of them
      before its fusion head. Masks at the padded size work too.

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
        accumulator = self._instance_accumulator(mask_cls,
                                                 mask_pred.shape[-2:])
        for queries in accumulator.wanted().split(
                queries_per_block(mask_pred.shape[-2:], _BLOCK_BYTES)):
            logits = mask_pred[queries]
            probs = logits.sigmoid() if mask_prob is None else \
                mask_prob[queries]
            accumulator.update(queries, logits, probs)
        return accumulator.result()

    def _instance_accumulator(self, mask_cls: Tensor,
                              size: Tuple[int, int]) -> InstanceAccumulator:
        return InstanceAccumulator(
            mask_cls, self.num_things_classes,
            self.test_cfg.get('max_per_image', 100),
            self.test_cfg.get('panoptic_on', True), size)

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
            mask_pred_results (Tensor): Mask logits (B, Q, h, w) at the
                padded input size ``batch_input_shape`` or below it (FC-CLIP:
                stride 4); smaller ones are upsampled here, bilinearly as
                mmdet's ``MaskFormer.predict`` does before its fusion head,
                a block of queries at a time (without ``batch_input_shape``
                in the metainfo, they are taken to be at the padded size).
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
            # (masks given at the padded size, as mmdet's fusion heads take
            # them, need no batch_input_shape)
            pad_size = tuple(meta.get('batch_input_shape',
                                      mask_pred.shape[-2:]))
            img_size = tuple(meta['img_shape'][:2])
            out_size = tuple(meta['ori_shape'][:2]) if rescale else img_size
            if not before:
                # Semantic-only configs: infer at the input resolution and
                # resize the score map (official FCCLIP.forward,
                # sem_seg_postprocess_before_inference False).
                # Chunked over classes (zero-shot memory fix); the same
                # labels as semantic_scores -> _crop_resize -> argmax.
                mask_pred = self._upsample(mask_pred, pad_size)
                results.append(dict(sem_results=self._semantic_argmax(
                    mask_cls, mask_pred, lambda scores: self._crop_resize(
                        scores, img_size, out_size))))
                continue

            def masks(queries: Tensor, mask_pred=mask_pred) -> Tensor:
                # the queries' masks at the output size: upsampled to the
                # padded input, cropped, resized (each query on its own, so
                # a block gives the values of the whole batch)
                return self._crop_resize(
                    self._upsample(mask_pred[queries], pad_size), img_size,
                    out_size)

            results.append(
                self._infer(mask_cls, masks, mask_pred.shape[0], out_size,
                            panoptic_on, instance_on, semantic_on))
        return results

    def _infer(self, mask_cls: Tensor, masks: Callable[[Tensor], Tensor],
               num_queries: int, size: Tuple[int, int], panoptic_on: bool,
               instance_on: bool, semantic_on: bool) -> dict:
        """Panoptic, instance and semantic inference of one image in one
        pass over its queries' full-resolution masks.

        The masks are made (``masks(queries)``: upsampled mask logits) and
        passed through the sigmoid a block of :data:`_BLOCK_BYTES` at a
        time, and each block is reduced by every enabled task while it is in
        cache: :class:`PanopticAccumulator` (running argmax and counts) and
        :class:`InstanceAccumulator` (the chosen queries' masks). Only
        semantic inference needs every query's probabilities at once (one
        sum over the queries); they are kept when it is on. Before, the
        (Q, H, W) logits and probabilities of all queries were built first
        (2 x 410 MB at 640 x 640, faulted in on every forward) and each task
        made its own passes over them. The results are those of the
        per-task methods (:meth:`panoptic_postprocess`,
        :meth:`instance_postprocess`, :meth:`semantic_postprocess`; tested).

        Args:
            mask_cls (Tensor): Class logits (Q, K + 1).
            masks (Callable[[Tensor], Tensor]): Query indices (n, ) -> their
                mask logits at the output size (n, H, W).
            num_queries (int): Q.
            size (tuple[int, int]): (H, W), the output size.
            panoptic_on, instance_on, semantic_on (bool): The tasks.

        Returns:
            dict: ``pan_results``, ``ins_results``, ``sem_results`` of the
            enabled tasks.
        """
        panoptic = PanopticAccumulator(
            mask_cls, self.num_things_classes, self.num_classes,
            self.test_cfg, size) if panoptic_on else None
        instance = self._instance_accumulator(mask_cls, size) \
            if instance_on else None
        all_probs = mask_cls.new_empty((num_queries, *size)) \
            if semantic_on else None
        queries = torch.arange(num_queries, device=mask_cls.device)
        if panoptic is None and all_probs is None and instance is not None:
            queries = instance.wanted()
        for block in queries.split(queries_per_block(size, _BLOCK_BYTES)):
            logits = masks(block)
            if all_probs is None:
                probs = logits.sigmoid()
            else:
                # (block is a range of queries here)
                probs = torch.sigmoid(
                    logits, out=all_probs[int(block[0]):int(block[-1]) + 1])
            if panoptic is not None:
                panoptic.update(block, probs)
            if instance is not None:
                instance.update(block, logits, probs)
        result = dict()
        if panoptic is not None:
            result['pan_results'] = panoptic.result()
        if instance is not None:
            result['ins_results'] = instance.result()
        if semantic_on:
            result['sem_results'] = self._semantic_argmax(
                mask_cls, None, mask_prob=all_probs)
        return result

    @staticmethod
    def _upsample(masks: Tensor, size: Tuple[int, int]) -> Tensor:
        """(n, h, w) mask logits -> (n, *size), bilinearly (mmdet's
        ``MaskFormer.predict``); unchanged when already that size."""
        if tuple(masks.shape[-2:]) == tuple(size):
            return masks
        return F.interpolate(
            masks[None], size=size, mode='bilinear', align_corners=False)[0]

    @staticmethod
    def _crop_resize(x: Tensor, img_size, out_size) -> Tensor:
        """Drop the padding, then resize bilinearly to ``out_size``."""
        x = x[:, :img_size[0], :img_size[1]]
        if tuple(x.shape[-2:]) != tuple(out_size):
            x = F.interpolate(
                x[None], size=tuple(out_size), mode='bilinear',
                align_corners=False)[0]
        return x
