"""The frozen open_clip CLIP that FC-CLIP uses twice: as the feature
extractor of the mask decoder and as the open-vocabulary classifier."""
import os
import os.path as osp
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor

from ..utils import mask_pool


@MODELS.register_module()
class OpenCLIPBackbone(BaseModule):
    """A frozen open_clip CLIP model (ConvNeXt or OpenAI ModifiedResNet).

    ``forward`` returns the four stage outputs ``res2..res5`` (strides 4-32)
    for the pixel decoder. The dense CLIP feature (``clip_vis_dense``: the
    raw last stage, official ``CLIP.extract_features`` in
    ``fcclip/modeling/backbone/clip.py``), the CLIP visual head applied to masks
    (:meth:`mask_embed`, official ``visual_prediction_forward``), the text encoder and the CLIP
    ``logit_scale`` serve the out-of-vocabulary classifier.

    The model is frozen: no parameter requires grad, it stays in eval mode
    when its parent is put in train mode (so ConvNeXt's drop-path and the
    ResNets' BN statistics never change), and it runs under ``no_grad``.

    Args:
        model_name (str): An open_clip model name, e.g.
            ``'convnext_large_d_320'``, ``'convnext_base'``, ``'RN50'``.
            Defaults to ``'convnext_large_d_320'``.
        pretrained (str, optional): An open_clip pretrained tag (downloaded
            by open_clip), the path of a local checkpoint file, or None for
            random initialisation. Defaults to
            ``'laion2b_s29b_b131k_ft_soup'``.
        model_cfg (dict, optional): A full open_clip model config
            (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...) to build
            instead of the named one, e.g. a tiny tower for tests. Defaults
            to None.
        cache_dir (str, optional): open_clip's download directory.
        init_cfg (dict, optional): Unused; CLIP weights come from
            ``pretrained``.
    """

    def __init__(self,
                 model_name: str = 'convnext_large_d_320',
                 pretrained: Optional[str] = 'laion2b_s29b_b131k_ft_soup',
                 model_cfg: Optional[dict] = None,
                 cache_dir: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        # Imported here so that `import mmfcclip` stays light.
        import open_clip

        self.model_name = model_name
        self.pretrained = pretrained
        self.clip_model = self._build_clip(open_clip, model_name, pretrained,
                                           model_cfg, cache_dir)
        context_length = getattr(self.clip_model, 'context_length', 77)
        if model_cfg is None:
            self.tokenizer = open_clip.get_tokenizer(model_name)
        else:
            self.tokenizer = open_clip.SimpleTokenizer(
                context_length=context_length)

        visual = self.clip_model.visual
        if hasattr(visual, 'trunk') and hasattr(visual.trunk, 'stages'):
            self.model_type = 'convnext'
            self.out_channels = [
                info['num_chs'] for info in visual.trunk.feature_info[-4:]
            ]
        elif hasattr(visual, 'attnpool') and hasattr(visual, 'layer4'):
            self.model_type = 'resnet'
            width = visual.conv3.out_channels
            self.out_channels = [width * 4 * 2**i for i in range(4)]
        else:
            raise ValueError(
                f'open_clip model {model_name!r} is neither a ConvNeXt '
                f'(timm trunk with stages) nor a ModifiedResNet: FC-CLIP '
                f'needs a convolutional CLIP.')
        self.embed_dims = self._text_projection_dim()
        self.fingerprint = self._fingerprint(model_name, pretrained)
        self._freeze()

    @staticmethod
    def _build_clip(open_clip, model_name: str, pretrained: Optional[str],
                    model_cfg: Optional[dict],
                    cache_dir: Optional[str]) -> nn.Module:
        is_file = isinstance(pretrained, str) and osp.isfile(pretrained)
        if model_cfg is not None:
            cfg = dict(model_cfg)
            clip = open_clip.CLIP(**cfg)
            if pretrained is not None:
                if not is_file:
                    raise FileNotFoundError(
                        f'With a custom model_cfg, pretrained must be a local '
                        f'checkpoint file or None, got {pretrained!r}.')
                open_clip.load_checkpoint(clip, pretrained)
            return clip

        if model_name not in open_clip.list_models():
            close = [m for m in open_clip.list_models()
                     if model_name.lower()[:5] in m.lower()][:10]
            raise ValueError(f'Unknown open_clip model name {model_name!r}. '
                             f'Similar names: {close}.')
        if pretrained is None or is_file:
            return open_clip.create_model(model_name, pretrained=pretrained)
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if pretrained not in tags:
            raise ValueError(
                f'pretrained={pretrained!r} is neither a local file nor a '
                f'pretrained tag of {model_name!r} (tags: {tags}).')
        try:
            return open_clip.create_model(
                model_name, pretrained=pretrained, cache_dir=cache_dir)
        except Exception as e:
            raise RuntimeError(
                f'Could not fetch the open_clip weights {model_name!r} / '
                f'{pretrained!r} (no network or hub access?). Download the '
                f'checkpoint elsewhere and pass its local file path as '
                f'`pretrained`, e.g. --cfg-options '
                f'model.backbone.pretrained=/path/to/open_clip_model.bin. '
                f'Cause: {e}') from e

    @staticmethod
    def _fingerprint(model_name: str,
                     pretrained: Optional[str]) -> Optional[str]:
        """Identifies the loaded weights, for the on-disk text cache.

        Taken when the weights are loaded (a local file that changes later
        does not change this model). None (no disk caching) for random
        weights, which differ per run.
        """
        if pretrained is None:
            return None
        if osp.isfile(pretrained):
            stat = os.stat(pretrained)
            return (f'{model_name}|{osp.abspath(pretrained)}|'
                    f'{stat.st_size}|{int(stat.st_mtime)}')
        return f'{model_name}|{pretrained}'

    def _text_projection_dim(self) -> int:
        proj = self.clip_model.text_projection
        if isinstance(proj, nn.Linear):
            return proj.out_features
        return proj.shape[-1]

    def _freeze(self) -> None:
        self.clip_model.eval()
        for param in self.clip_model.parameters():
            param.requires_grad = False

    def init_weights(self) -> None:
        """CLIP weights come from ``pretrained``: never re-initialise."""

    def train(self, mode: bool = True) -> 'OpenCLIPBackbone':
        """Keep the frozen CLIP in eval mode whatever ``mode`` is."""
        super().train(False)
        self.training = mode
        return self

    @property
    def logit_scale(self) -> Tensor:
        """The CLIP log-temperature (used by the out-of-vocab classifier)."""
        return self.clip_model.logit_scale

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Extract ``res2..res5``.

        Args:
            x (Tensor): Normalised images of shape (B, 3, H, W).

        Returns:
            tuple[Tensor]: Four maps of strides 4, 8, 16, 32 with
            :attr:`out_channels` channels.
        """
        self.clip_model.eval()
        visual = self.clip_model.visual
        outs = []
        if self.model_type == 'convnext':
            x = visual.trunk.stem(x)
            for stage in visual.trunk.stages:
                x = stage(x)
                # timm's ConvNeXt blocks leave channels-last strides; the
                # official extract_features_convnext makes each stage
                # contiguous, and so must we: the pixel decoder's
                # convolutions take another kernel path on strided input,
                # which changes results by ~1e-6 and flips mask logits near 0.
                outs.append(x.contiguous())
        else:
            x = visual.act1(visual.bn1(visual.conv1(x)))
            x = visual.act2(visual.bn2(visual.conv2(x)))
            x = visual.act3(visual.bn3(visual.conv3(x)))
            x = visual.avgpool(x)
            for layer in (visual.layer1, visual.layer2, visual.layer3,
                          visual.layer4):
                x = layer(x)
                outs.append(x)
        return tuple(outs)

    @torch.no_grad()
    def dense_features(self, res5: Tensor) -> Tensor:
        """``clip_vis_dense``: ConvNeXt ``norm_pre`` (Identity for
        convnext_large) of res5; the raw layer4 output for ResNets."""
        if self.model_type == 'convnext':
            return self.clip_model.visual.trunk.norm_pre(res5)
        return res5

    @torch.no_grad()
    def mask_embed(self, dense: Tensor, mask_logits: Tensor) -> Tensor:
        """CLIP embeddings of masked regions (official
        ``CLIP.visual_prediction_forward`` and ``FCCLIP.forward``).

        Args:
            dense (Tensor): ``clip_vis_dense`` of shape (B, C, H, W).
            mask_logits (Tensor): Mask logits already resized to (H, W),
                shape (B, Q, H, W).

        Returns:
            Tensor: Shape (B, Q, embed_dims).
        """
        self.clip_model.eval()
        if self.model_type == 'convnext':
            pooled = mask_pool(dense, mask_logits)
            b, q, c = pooled.shape
            visual = self.clip_model.visual
            x = visual.trunk.forward_head(pooled.reshape(b * q, c, 1, 1))
            return visual.head(x).reshape(b, q, -1)
        return self._mask_attention_pool(dense, mask_logits)

    def _mask_attention_pool(self, dense: Tensor, mask_logits: Tensor) -> Tensor:
        """CLIP attention pooling restricted to each mask (ResNet CLIPs).

        The query is the mean of all positions plus the CLS position
        embedding; keys/values are the positions (not the mean token) plus
        the bilinearly resized grid embedding; positions outside the mask
        are blocked. An empty mask blocks every key: the official code gets
        NaN there (softmax over no key) and relies on
        ``ensemble_on_valid_mask``. Current torch returns a finite value for
        fully blocked rows instead, so the NaN is set explicitly to keep the
        official semantics.
        """
        pool = self.clip_model.visual.attnpool
        b, c, h, w = dense.shape
        q = mask_logits.shape[1]
        pos = pool.positional_embedding.to(dense.dtype)
        side = int(round((pos.shape[0] - 1)**0.5))
        grid = pos[1:].reshape(1, side, side, c).permute(0, 3, 1, 2)
        grid = F.interpolate(
            grid, size=(h, w), mode='bilinear', align_corners=False)
        grid = grid.reshape(c, h * w).t()  # (HW, C)
        tokens = dense.flatten(2).permute(2, 0, 1)  # (HW, B, C)
        keys = tokens + grid[:, None, :]
        query = (tokens.mean(dim=0, keepdim=True) + pos[:1, None, :]).repeat(
            q, 1, 1)  # (Q, B, C)
        blocked = (mask_logits <= 0).flatten(2)  # (B, Q, HW)
        blocked = blocked.repeat_interleave(pool.num_heads, dim=0)
        out, _ = F.multi_head_attention_forward(
            query=query,
            key=keys,
            value=keys,
            embed_dim_to_check=c,
            num_heads=pool.num_heads,
            q_proj_weight=pool.q_proj.weight,
            k_proj_weight=pool.k_proj.weight,
            v_proj_weight=pool.v_proj.weight,
            in_proj_weight=None,
            in_proj_bias=torch.cat(
                [pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
            bias_k=None,
            bias_v=None,
            add_zero_attn=False,
            dropout_p=0.0,
            out_proj_weight=pool.c_proj.weight,
            out_proj_bias=pool.c_proj.bias,
            use_separate_proj_weight=True,
            training=False,
            need_weights=False,
            attn_mask=blocked)
        out = out.permute(1, 0, 2)  # (B, Q, D)
        empty = (mask_logits <= 0).flatten(2).all(dim=-1)
        return out.masked_fill(empty[..., None], float('nan'))

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """Unnormalised CLIP text embeddings.

        Reproduces open_clip's own ``CLIP.encode_text`` (batch-first on
        open_clip >= 2.26; FC-CLIP's hand-written sequence-first version is
        wrong on open_clip >= 2.26, whose text transformer is batch-first) without its
        padding work: :func:`~mmfcclip.models.utils.encode_text_trimmed`
        runs each distinct prompt only up to its end-of-text token, which
        the causal text tower makes exact (within ~1e-6 relative, fp32).
        Text towers it cannot reproduce fall back to ``encode_text`` over
        the full context.

        Args:
            texts (Sequence[str]): N prompts.

        Returns:
            Tensor: Shape (N, embed_dims).
        """
        # Imported here, not with mask_pool, to keep this change local.
        from ..utils import encode_text_trimmed

        self.clip_model.eval()
        device = self.clip_model.logit_scale.device
        tokens = self.tokenizer(list(texts)).to(device)
        return encode_text_trimmed(self.clip_model, tokens)
