"""Memory of the per-vocabulary caches in a long-running process.

Builds a tiny random FC-CLIP (no download), then switches through
``--vocabularies`` distinct vocabularies of ``--classes`` classes each, as
a server answering requests with new class lists would, computing what a
prediction needs per vocabulary (the text classifier and the seen mask).
Prints the resident set size (RSS) before and after, and the cache sizes,
for the configured bounds (``text_classifier.cache_size``,
``seen_cache_size``)::

    python tools/analysis_tools/vocabulary_cache_memory.py --stub-text-encoder
    python tools/analysis_tools/vocabulary_cache_memory.py \
        --stub-text-encoder --cache-size 300
    python tools/analysis_tools/vocabulary_cache_memory.py --vocabularies 30
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def rss_mb() -> float:
    """Resident set size of this process (Linux /proc)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    raise RuntimeError('VmRSS not found in /proc/self/status')


def main() -> None:
    """Runs the tool without autograd; the global grad mode is left as
    it was, so callers (tests, notebooks) can still train after."""
    import torch
    with torch.no_grad():
        return _main()


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--vocabularies', type=int, default=300)
    parser.add_argument('--classes', type=int, default=200)
    parser.add_argument('--cache-size', type=int, default=16,
                        help='text_classifier.cache_size and seen_cache_size')
    parser.add_argument(
        '--stub-text-encoder',
        action='store_true',
        help='random text embeddings instead of the (tiny) text tower: the '
        'cached entries are the same, minutes become seconds')
    args = parser.parse_args()

    import torch
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmfcclip  # noqa: F401
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    from _tiny import tiny_model_cfg

    init_default_scope('mmdet')
    cfg = tiny_model_cfg()
    cfg.text_classifier.cache_size = args.cache_size
    cfg.seen_cache_size = args.cache_size
    model = MODELS.build(cfg).eval()
    if args.stub_text_encoder:
        width = model.backbone.embed_dims
        model.backbone.encode_text = lambda texts: torch.randn(
            len(texts), width)
    # one warm-up vocabulary: allocator and tokenizer caches
    model.set_test_vocabulary(dict(classes=['warm up']))
    model.seen_mask(model._classifier([])[0])
    before = rss_mb()
    for v in range(args.vocabularies):
        classes = [f'class {v} {c}' for c in range(args.classes)]
        model.set_test_vocabulary(dict(classes=classes))
        vocab, _ = model._classifier([])
        model.seen_mask(vocab)
    after = rss_mb()
    print(f'{args.vocabularies} vocabularies x {args.classes} classes, '
          f'cache bound {args.cache_size}: RSS {before:.0f} -> {after:.0f} '
          f'MB (+{after - before:.0f} MB); cached text classifiers '
          f'{len(model.text_classifier._memory_cache)}, seen masks '
          f'{len(model.vocabularies._seen)}')


if __name__ == '__main__':
    main()
