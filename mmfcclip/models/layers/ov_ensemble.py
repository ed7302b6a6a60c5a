from typing import Optional

import torch
from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor


@MODELS.register_module()
class OpenVocabEnsemble(BaseModule):
    """FC-CLIP's geometric ensemble of in- and out-of-vocabulary scores.

    With ``p_in = softmax(z_in[..., :K])``, ``p_out = softmax(z_out[..., :K])``
    (void dropped before the softmax) and per-class weight ``a_c = alpha``
    for classes seen in training, ``beta`` otherwise:
    ``g_c = log(p_in_c^(1 - a_c) * p_out_c^a_c)``; the result is
    ``log([softmax(g) * (1 - v), v] + 1e-8)`` with ``v`` the void
    probability of ``softmax(z_in)`` (official ``FCCLIP.forward`` in
    ``fcclip/fcclip.py``). ``alpha = beta = 0``
    gives the in-vocabulary classifier alone.

    Two arithmetic modes:

    - ``'exact'`` reproduces the official arithmetic: both branches
      ``log(p_in^(1-a) p_out^a)`` are evaluated for every class and mixed
      by multiplying with the 0/1 seen mask. A probability that underflows
      to 0 gives ``-inf * 0 = NaN`` and turns the whole query row NaN
      (see docs/fidelity.md).
    - ``'safe'`` (default) selects the weight per class and works in log
      space (``log_softmax``), so it never yields NaN or inf, whatever the
      inputs: query rows whose CLIP scores are not all finite (ResNet
      pooling of an empty mask) fall back to the in-vocabulary scores; in
      the in-vocabulary logits ``+inf`` means certainty (the ``+inf``
      classes share the probability), ``-inf`` and NaN mean probability 0
      (a row without any finite or ``+inf`` logit is uniform), and log
      probabilities are floored at :attr:`LOG_FLOOR`. It equals ``'exact'``
      wherever ``'exact'`` is finite, up to float rounding; it is the
      default because one NaN row poisons panoptic and semantic inference
      of the whole image.

    Args:
        alpha (float): Out-of-vocab weight for seen classes. Defaults to 0.4.
        beta (float): Out-of-vocab weight for unseen classes. Defaults to 0.8.
        ensemble_on_valid_mask (bool): Use the in-vocab scores alone for
            queries whose pooling mask is empty (the ResNet configs).
            Defaults to False.
        mode (str): ``'safe'`` or ``'exact'``. Defaults to ``'safe'``.
        init_cfg (dict, optional): Initialisation config.
    """

    #: Smallest log-probability in ``'safe'`` mode: exp(-1e4) is 0 in any
    #: float type, and differences of floored values stay finite.
    LOG_FLOOR = -1e4

    def __init__(self,
                 alpha: float = 0.4,
                 beta: float = 0.8,
                 ensemble_on_valid_mask: bool = False,
                 mode: str = 'safe',
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('alpha', alpha), ('beta', beta)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {value}.')
        if mode not in ('safe', 'exact'):
            raise ValueError(f'mode must be "safe" or "exact", got {mode!r}.')
        self.alpha = alpha
        self.beta = beta
        self.ensemble_on_valid_mask = ensemble_on_valid_mask
        self.mode = mode

    @property
    def enabled(self) -> bool:
        """False when the CLIP branch cannot change the result."""
        return self.alpha > 0 or self.beta > 0

    def _exponent(self, value: float, valid: Optional[Tensor],
                  like: Tensor) -> Tensor:
        """``value`` as a (B, Q, 1) exponent, 0 for invalid queries."""
        a = like.new_full(like.shape[:-1] + (1, ), value)
        if self.ensemble_on_valid_mask and valid is not None:
            a = a * valid[..., None].to(like.dtype)
        return a

    @staticmethod
    def _sanitise(logits: Tensor) -> Tensor:
        """Finite logits with the meaning of non-finite ones kept.

        Per row: ``+inf`` entries become the row's largest finite value +
        100 (each then carries all the probability, shared equally), ``-inf``
        and NaN entries become the smallest finite value - 100 (probability
        0 up to exp(-100)). A row with no finite entry gets 0 for ``+inf``
        entries and -100 for the others.
        """
        finite = torch.isfinite(logits)
        if bool(finite.all()):
            return logits
        big = torch.finfo(logits.dtype).max
        top = torch.where(finite, logits, logits.new_tensor(-big)).amax(
            dim=-1, keepdim=True)
        low = torch.where(finite, logits, logits.new_tensor(big)).amin(
            dim=-1, keepdim=True)
        any_finite = finite.any(dim=-1, keepdim=True)
        top = torch.where(any_finite, top, torch.zeros_like(top))
        low = torch.where(any_finite, low, torch.zeros_like(low))
        return torch.where(
            finite, logits,
            torch.where(logits == float('inf'), top + 100.0, low - 100.0))

    def forward(self,
                in_logits: Tensor,
                out_logits: Tensor,
                seen: Tensor,
                valid: Optional[Tensor] = None) -> Tensor:
        """Ensemble the two classifiers.

        Args:
            in_logits (Tensor): In-vocab logits (B, Q, K + 1), void last.
            out_logits (Tensor): Out-of-vocab (CLIP) logits (B, Q, K + 1);
                its void column is ignored.
            seen (Tensor): Bool (K, ), classes seen in training.
            valid (Tensor, optional): Bool (B, Q), queries with a non-empty
                pooling mask; used with ``ensemble_on_valid_mask``.

        Returns:
            Tensor: Log-probabilities ``log(P + 1e-8)`` of shape
            (B, Q, K + 1), void last; always finite in ``'safe'`` mode.
        """
        in_logits, out_logits = in_logits.float(), out_logits.float()
        k = in_logits.shape[-1] - 1
        if seen.shape != (k, ):
            raise ValueError(f'seen must have shape ({k},), got '
                             f'{tuple(seen.shape)}.')
        seen = seen.to(in_logits.device)
        if self.mode == 'safe':
            in_logits = self._sanitise(in_logits)
        void = in_logits.softmax(-1)[..., -1:]
        alpha = self._exponent(self.alpha, valid, in_logits)
        beta = self._exponent(self.beta, valid, in_logits)
        if self.mode == 'exact':
            p_in = in_logits[..., :k].softmax(-1)
            p_out = out_logits[..., :k].softmax(-1)
            seen_f = seen.to(in_logits.dtype)
            g = (torch.log(p_in**(1 - alpha) * p_out**alpha) * seen_f +
                 torch.log(p_in**(1 - beta) * p_out**beta) * (1 - seen_f))
        else:
            a = torch.where(seen, alpha, beta)  # (B, Q, K)
            log_in = in_logits[..., :k].log_softmax(-1).clamp(
                min=self.LOG_FLOOR)
            log_out = out_logits[..., :k].log_softmax(-1)
            usable = torch.isfinite(log_out).all(dim=-1, keepdim=True)
            a = torch.where(usable, a, torch.zeros_like(a))
            log_out = torch.where(usable, log_out.clamp(min=self.LOG_FLOOR),
                                  torch.zeros_like(log_out))
            g = log_in + a * (log_out - log_in)
        probs = torch.cat([g.softmax(-1) * (1 - void), void], dim=-1)
        return torch.log(probs + 1e-8)
