"""mmdet's ``DetInferencer`` for FC-CLIP."""
import copy
import os.path as osp
import warnings
from datetime import datetime
from typing import Dict, List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch.nn as nn
from mmdet.apis import DetInferencer
from mmengine.dataset import Compose
from mmengine.fileio import get
from mmengine.visualization import Visualizer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)

from ..visualization import FCCLIPLocalVisualizer, check_task
from .inference import (check_image_file, collect_image_files,
                        inference_pipeline_cfg, load_fcclip_model,
                        vocabulary_texts)
from .model_index import resolve_config_file
from .results import prediction_to_dict
from .text_cache import TextCache
from .vocabulary import check_vocabulary, parse_class_names

__all__ = ['FCCLIPInferencer']

InputsType = Union[str, np.ndarray, Sequence[Union[str, np.ndarray]]]
_DET_VISUALIZERS = (None, 'DetLocalVisualizer', 'mmdet.DetLocalVisualizer')


class FCCLIPInferencer(DetInferencer):
    """``DetInferencer`` for FC-CLIP: same arguments, same call, plus what
    open-vocabulary segmentation needs.

    Differences from :class:`mmdet.apis.DetInferencer`:

    - ``texts`` (thing classes) and ``stuff_texts`` (stuff classes), mmdet
      3.3's open-vocabulary arguments, are checked (clear errors for an
      empty vocabulary or a string not in the ``'cat . dog'`` format) and
      may be given alone; synonyms with commas (``'person,child,man'``);
    - predictions are returned and saved without panopticapi: the dict
      (and ``preds/<image>.json``) carries the vocabulary, the panoptic
      segments with class name, thing/stuff, score and area
      (``segments_info``), instances with names and RLE masks, semantic
      classes; the panoptic map is written as a COCO panoptic PNG
      (:mod:`mmfcclip.apis.results`);
    - pictures (``vis/<image>.png``) are drawn by
      :class:`~mmfcclip.visualization.FCCLIPLocalVisualizer`: one task
      (``task``: ``'panoptic'``, ``'instance'`` or ``'semantic'``), the
      vocabulary's names, void not drawn, a legend, colours for any
      vocabulary size;
    - checkpoints written by ``mim train`` load on torch >= 2.6
      (:func:`mmfcclip.engine.safe_checkpoint_loading`), and the CLIP is
      not downloaded when the checkpoint holds it;
    - text embeddings are cached on disk by default (``text_cache``, see
      :mod:`mmfcclip.apis.text_cache`);
    - inputs may be files, folders, glob patterns or arrays (BGR, as
      ``cv2.imread`` gives them); a missing or unreadable image raises an
      error naming it; the progress bar counts images.

    Args:
        model (str | dict | Config, optional): Config file or object (None:
            the one stored in ``weights``).
        weights (str, optional): Checkpoint.
        device (str, optional): Defaults to the GPU when there is one.
        scope (str): Registry scope. Defaults to 'mmdet'.
        palette (str): ``'none'`` (the checkpoint's or dataset's palette for
            its own classes, generated colours otherwise), ``'random'``
            (generated), or an mmdet palette name.
        show_progress (bool): Show a progress bar. Defaults to True.
        task (str): Task drawn by default. Defaults to 'panoptic'.
        text_cache (bool | str | None): On-disk text-embedding cache: True
            (default folder), a folder, or False. Defaults to True.
        vocabulary (dict, optional): ``thing_classes`` and
            ``stuff_classes`` to use when a call gives no ``texts`` (see
            :meth:`set_vocabulary`). Defaults to the checkpoint's classes.

    Example:
        >>> from mmfcclip.apis import FCCLIPInferencer
        >>> inferencer = FCCLIPInferencer(
        ...     'configs/fcclip_convnext_l_coco.py', 'fcclip_cocopan.pth')
        >>> result = inferencer('street.jpg', out_dir='outputs',
        ...                     texts='person . bicycle . zebra crossing',
        ...                     stuff_texts='road . sky', no_save_pred=False)
        >>> result['predictions'][0]['segments_info'][0]['category']
    """

    visualize_kwargs: set = DetInferencer.visualize_kwargs | {'task'}

    def __init__(self,
                 model=None,
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 scope: Optional[str] = 'mmdet',
                 palette: str = 'none',
                 show_progress: bool = True,
                 task: str = 'panoptic',
                 text_cache: TextCache = True,
                 vocabulary: Optional[dict] = None) -> None:
        # read by _init_model / _init_visualizer during super().__init__
        self.task = check_task(task)
        self.text_cache = text_cache
        if model is None and weights is None:
            raise ValueError('Give a config (model=...), a checkpoint '
                             '(weights=...), or both.')
        if isinstance(model, str):
            # a config file, or a model name of mmfcclip's metafile
            model = resolve_config_file(model)
        super().__init__(
            model=model,
            weights=weights,
            device=device,
            scope=scope,
            palette=palette,
            show_progress=show_progress)
        if vocabulary is not None:
            self.set_vocabulary(**vocabulary)

    # ------------------------------------------------------------------
    # set-up
    def _init_model(self, cfg, weights: Optional[str],
                    device: str = 'cpu') -> nn.Module:
        return load_fcclip_model(cfg, weights, device, self.palette,
                                 self.text_cache)

    def _init_pipeline(self, cfg) -> Compose:
        return Compose(inference_pipeline_cfg(cfg, 'mmdet.InferencerLoader'))

    def _init_visualizer(self, cfg) -> Optional[Visualizer]:
        vis_cfg = copy.deepcopy(dict(cfg.get('visualizer') or {}))
        if vis_cfg.get('type') in _DET_VISUALIZERS:
            # mmdet's visualiser draws all tasks over each other and names
            # labels from dataset_meta: use mmfcclip's.
            vis_cfg['type'] = FCCLIPLocalVisualizer
        if not vis_cfg.get('save_dir'):
            # The inferencer writes its pictures itself (out_dir); a local
            # backend without save_dir would only warn.
            vis_cfg['vis_backends'] = [
                b for b in vis_cfg.get('vis_backends') or []
                if 'LocalVisBackend' not in str(b.get('type'))
            ] or None
        timestamp = str(datetime.timestamp(datetime.now()))
        name = vis_cfg.get('name', f'fcclip-inferencer-{timestamp}')
        if Visualizer.check_instance_created(name):
            name = f'{name}-{timestamp}'
        vis_cfg['name'] = name
        from mmdet.registry import VISUALIZERS
        visualizer = VISUALIZERS.build(vis_cfg)
        if isinstance(visualizer, FCCLIPLocalVisualizer):
            visualizer.task = self.task
        visualizer.dataset_meta = self.model.dataset_meta
        return visualizer

    def set_vocabulary(self,
                       thing_classes: Union[str, Sequence[str]] = (),
                       stuff_classes: Union[str, Sequence[str]] = ()
                       ) -> None:
        """Use this vocabulary when a call gives no ``texts``.

        Args:
            thing_classes (str | Sequence[str]): ``'cat . dog'`` or a list;
                synonyms with commas.
            stuff_classes (str | Sequence[str]): Likewise.
        """
        things = parse_class_names(thing_classes, 'thing_classes') or ()
        stuff = parse_class_names(stuff_classes, 'stuff_classes') or ()
        check_vocabulary(things, stuff, 'thing_classes / stuff_classes')
        self.model.set_test_vocabulary(
            dict(thing_classes=list(things), stuff_classes=list(stuff)))

    # ------------------------------------------------------------------
    # inputs
    def _inputs_to_list(self, inputs: InputsType) -> list:
        """Files, folders (their images), glob patterns and arrays."""
        return collect_image_files(inputs)

    def _texts_per_input(self, texts, stuff_texts, num: int
                         ) -> Optional[List]:
        """One ``(text, stuff_text)`` per input, or None."""
        if texts is None and stuff_texts is None:
            return None

        def per_input(value, what: str) -> list:
            if value is None or isinstance(value, str):
                return [value] * num
            if isinstance(value, (list, tuple)):
                if len(value) != num:
                    raise ValueError(
                        f'{what} has {len(value)} entries but there are '
                        f'{num} inputs: give one string like \'cat . dog\' '
                        f'for all images, or one per image.')
                return list(value)
            raise TypeError(f'{what} must be a string like \'cat . dog\' or '
                            f'a list with one per image, got '
                            f'{type(value).__name__}.')

        pairs = zip(per_input(texts, 'texts'),
                    per_input(stuff_texts, 'stuff_texts'))
        return [vocabulary_texts(t, s) for t, s in pairs]

    def _get_chunk_data(self, inputs, chunk_size: int):
        """mmdet's batching, with errors that name the image."""
        inputs_iter = iter(inputs)
        while True:
            chunk = []
            for item in inputs_iter:
                source = (item.get('img_path', item.get('img')) if isinstance(
                    item, dict) else item)
                data = dict(item) if isinstance(item, dict) else item
                try:
                    chunk.append((source, self.pipeline(data)))
                except Exception:
                    if isinstance(source, str):
                        check_image_file(source)  # raises the clear error
                    raise
                if len(chunk) == chunk_size:
                    break
            if not chunk:
                return
            yield chunk

    # ------------------------------------------------------------------
    def __call__(self,
                 inputs: InputsType,
                 batch_size: int = 1,
                 return_vis: bool = False,
                 show: bool = False,
                 wait_time: int = 0,
                 no_save_vis: bool = False,
                 draw_pred: bool = True,
                 pred_score_thr: float = 0.3,
                 return_datasamples: bool = False,
                 print_result: bool = False,
                 no_save_pred: bool = True,
                 out_dir: str = '',
                 texts: Union[None, str, Sequence[str]] = None,
                 stuff_texts: Union[None, str, Sequence[str]] = None,
                 custom_entities: bool = False,
                 tokens_positive=None,
                 task: Optional[str] = None,
                 **kwargs) -> dict:
        """Segment images; arguments as ``DetInferencer.__call__``.

        Args:
            inputs: An image file, folder, glob pattern or array (BGR), or a
                list of them.
            texts (str | list[str], optional): Thing classes,
                ``'cat . dog'``, for all images; a list gives one string
                per image (mmdet's convention).
            stuff_texts (str | list[str], optional): Stuff classes, likewise.
            task (str, optional): Task to draw (default: the inferencer's).
            pred_score_thr (float): Instances at or below it are not drawn;
                predictions are saved in full.
            no_save_pred (bool): Do not write ``preds/`` (True by default,
                as in mmdet).
            out_dir (str): Writes ``vis/<image>.png`` and, unless
                ``no_save_pred``, ``preds/<image>.json``,
                ``preds/<image>_panoptic_seg.png`` (COCO panoptic) and
                ``preds/<image>_semantic_seg.png``.
            custom_entities, tokens_positive: GLIP / Grounding DINO only;
                ignored.
            Others: see :meth:`mmdet.apis.DetInferencer.__call__`.

        Returns:
            dict: ``predictions`` (dicts, see :mod:`mmfcclip.apis.results`,
            or data samples with ``return_datasamples``) and
            ``visualization`` (RGB arrays when ``return_vis``).
        """
        del custom_entities, tokens_positive  # grounding models only
        task = check_task(task or self.task)
        (preprocess_kwargs, forward_kwargs, visualize_kwargs,
         postprocess_kwargs) = self._dispatch_kwargs(**kwargs)
        visualize_kwargs.pop('task', None)
        ori_inputs = self._inputs_to_list(inputs)
        vocabularies = self._texts_per_input(texts, stuff_texts,
                                             len(ori_inputs))
        if vocabularies is not None:
            wrapped = []
            for item, (text, stuff_text) in zip(ori_inputs, vocabularies):
                key = 'img_path' if isinstance(item, str) else 'img'
                wrapped.append({key: item, 'text': text,
                                'stuff_text': stuff_text})
            ori_inputs = wrapped

        chunks = self.preprocess(
            ori_inputs, batch_size=batch_size, **preprocess_kwargs)
        results = {'predictions': [], 'visualization': []}
        progress = Progress(
            TextColumn('[progress.description]{task.description}'),
            BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not self.show_progress)
        with progress:
            bar = progress.add_task('Inference', total=len(ori_inputs))
            for ori_imgs, data in chunks:
                # Arrays have no file name: number them once per input, so
                # that vis/<n>.png and preds/<n>.json belong together.
                self._stems = []
                for item in ori_imgs:
                    if isinstance(item, str):
                        self._stems.append(
                            osp.splitext(osp.basename(item))[0])
                    else:
                        self._stems.append(str(self.num_predicted_imgs)
                                           .zfill(8))
                        self.num_predicted_imgs += 1
                preds = self.forward(data, **forward_kwargs)
                visualization = self.visualize(
                    ori_imgs,
                    preds,
                    return_vis=return_vis,
                    show=show,
                    wait_time=wait_time,
                    draw_pred=draw_pred,
                    pred_score_thr=pred_score_thr,
                    no_save_vis=no_save_vis,
                    img_out_dir=out_dir,
                    task=task,
                    **visualize_kwargs)
                out = self.postprocess(
                    preds,
                    visualization,
                    return_datasamples=return_datasamples,
                    print_result=print_result,
                    no_save_pred=no_save_pred,
                    pred_out_dir=out_dir,
                    **postprocess_kwargs)
                results['predictions'].extend(out['predictions'])
                if out['visualization'] is not None:
                    results['visualization'].extend(out['visualization'])
                progress.advance(bar, len(preds))
        return results

    def visualize(self,
                  inputs: list,
                  preds: list,
                  return_vis: bool = False,
                  show: bool = False,
                  wait_time: int = 0,
                  draw_pred: bool = True,
                  pred_score_thr: float = 0.3,
                  no_save_vis: bool = False,
                  img_out_dir: str = '',
                  task: Optional[str] = None,
                  **kwargs) -> Optional[List[np.ndarray]]:
        """Draw the predictions; write ``<img_out_dir>/vis/<stem>.png``.

        Returns:
            list[np.ndarray] | None: RGB pictures, when anything is drawn.
        """
        if no_save_vis:
            img_out_dir = ''
        if not show and not img_out_dir and not return_vis:
            return None
        if self.visualizer is None:
            raise ValueError('Visualization needs a "visualizer" in the '
                             'config.')
        extra = dict(task=task or self.task) if isinstance(
            self.visualizer, FCCLIPLocalVisualizer) else {}
        drawn = []
        stems = getattr(self, '_stems', None) or [None] * len(preds)
        for single_input, pred, stem in zip(inputs, preds, stems):
            if isinstance(single_input, str):
                img = mmcv.imfrombytes(get(single_input),
                                       channel_order='rgb')
                name = osp.basename(single_input)
                stem = stem or osp.splitext(name)[0]
            elif isinstance(single_input, np.ndarray):
                # arrays are BGR (cv2, mmdet's pipeline); draw in RGB
                img = (single_input[..., ::-1] if single_input.ndim == 3
                       and single_input.shape[2] >= 3 else single_input)
                stem = stem or str(self.num_visualized_imgs).zfill(8)
                name = f'{stem}.png'
            else:
                raise ValueError(
                    f'Unsupported input type: {type(single_input)}')
            out_file = (osp.join(img_out_dir, 'vis', f'{stem}.png')
                        if img_out_dir else None)
            self.visualizer.add_datasample(
                name,
                img,
                pred,
                show=show,
                wait_time=wait_time,
                draw_gt=False,
                draw_pred=draw_pred,
                pred_score_thr=pred_score_thr,
                out_file=out_file,
                **extra)
            drawn.append(self.visualizer.get_image())
            self.num_visualized_imgs += 1
        return drawn

    def postprocess(self, preds: list, visualization=None,
                    return_datasamples: bool = False,
                    print_result: bool = False, no_save_pred: bool = False,
                    pred_out_dir: str = '', **kwargs) -> Dict:
        """mmdet's, with array inputs named as in :meth:`visualize`."""
        if no_save_pred:
            pred_out_dir = ''
        predictions = preds
        if not return_datasamples:
            stems = getattr(self, '_stems', None) or [None] * len(preds)
            predictions = [
                self.pred2dict(pred, pred_out_dir, stem)
                for pred, stem in zip(preds, stems)
            ]
        elif pred_out_dir:
            warnings.warn('Predictions are not saved with '
                          'return_datasamples=True (as in mmdet).')
        if print_result:
            print(dict(predictions=predictions))
        return dict(predictions=predictions, visualization=visualization)

    def pred2dict(self, data_sample, pred_out_dir: str = '',
                  stem: Optional[str] = None) -> Dict:
        """A prediction as a dict (:func:`~mmfcclip.apis.results.
        prediction_to_dict`), written to ``<pred_out_dir>/preds/`` when
        set; no panopticapi needed."""
        if stem is None and 'img_path' not in data_sample:
            stem = str(self.num_predicted_imgs).zfill(8)
            self.num_predicted_imgs += 1
        meta = self.model.dataset_meta or {}
        things = meta.get('thing_classes')
        return prediction_to_dict(
            data_sample,
            default_names=meta.get('classes') or (),
            default_num_things=None if things is None else len(things),
            pred_out_dir=pred_out_dir,
            stem=stem)
