from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper

__all__ = ['OpenVocabHook']


@HOOKS.register_module()
class OpenVocabHook(Hook):
    """Hands each dataset's vocabulary to an open-vocabulary model.

    - ``before_train``: the training dataset's metainfo becomes the training
      vocabulary when the model has none, and must match it otherwise (a
      config whose classes disagree with the data fails before the first
      iteration, not after a day of training on wrong targets).
    - ``before_val`` / ``before_test``: the evaluated dataset's metainfo
      (``classes``, ``thing_classes``, ``stuff_classes``) becomes the test
      vocabulary, so one checkpoint evaluates on any dataset by config.

    The model must implement ``set_train_vocabulary`` and
    ``set_test_vocabulary`` (as :class:`mmfcclip.models.FCCLIP` does).
    """

    priority = 'VERY_HIGH'

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    @staticmethod
    def _metainfo(loop) -> dict:
        dataset = loop.dataloader.dataset
        meta = getattr(dataset, 'metainfo', None)
        if not meta:
            raise RuntimeError(
                f'{type(dataset).__name__} has no metainfo, so the '
                f'vocabulary cannot be taken from it.')
        return meta

    def before_train(self, runner) -> None:
        model = self._model(runner)
        meta = runner.train_dataloader.dataset.metainfo
        if model.train_vocab is None:
            model.set_train_vocabulary(dict(meta))
            self._check_things(runner, model)
            return
        self._check_things(runner, model)
        dataset_classes = tuple(meta.get('classes', ()))
        if dataset_classes and dataset_classes != model.train_vocab.classes:
            raise ValueError(
                'model.train_vocabulary does not match the training '
                f'dataset classes: model has {len(model.train_vocab.classes)}'
                f' classes {list(model.train_vocab.classes)[:5]}..., the '
                f'dataset {len(dataset_classes)} '
                f'{list(dataset_classes)[:5]}...')

    @staticmethod
    def _check_things(runner, model) -> None:
        """Instance segmentation needs thing classes: a stuff-only training
        set (semantic labels) with ``instance_on`` would train for hours and
        then predict no instance at all."""
        test_cfg = getattr(model, 'test_cfg', None) or {}
        vocab = model.train_vocab
        if vocab.num_things or not test_cfg.get('instance_on', False):
            return
        dataset = runner.train_dataloader.dataset
        where = getattr(dataset, 'ann_file', '') or getattr(
            dataset, 'data_root', '')
        raise ValueError(
            f'The training data {type(dataset).__name__} ("{where}") has no '
            f'thing class (its {vocab.num_classes} classes are all stuff), '
            f'but model.test_cfg.instance_on=True asks for instance '
            f'segmentation. Semantic-only data: set model.test_cfg = '
            f'dict(panoptic_on=False, instance_on=False, semantic_on=True) '
            f'(configs/custom/fcclip_convnext_l_custom_semantic.py); '
            f'instance data: list its classes in metainfo["thing_classes"].')

    def _set_test(self, runner, loop) -> None:
        meta = self._metainfo(loop)
        self._model(runner).set_test_vocabulary(dict(meta))
        MMLogger.get_current_instance().info(
            f'OpenVocabHook: test vocabulary of {len(meta["classes"])} '
            f'classes from {type(loop.dataloader.dataset).__name__}.')

    def before_val(self, runner) -> None:
        self._set_test(runner, runner.val_loop)

    def before_test(self, runner) -> None:
        self._set_test(runner, runner.test_loop)

    def after_val(self, runner) -> None:
        # Validation must not leak its vocabulary into later test calls.
        self._model(runner).set_test_vocabulary(None)
