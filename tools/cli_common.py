"""Command-line options shared by ``tools/train.py`` and ``tools/test.py``.

Import-light on purpose (argparse and mmengine's config only): ``mim train``
runs ``train.py -h`` before training.
"""
import argparse
import os

from mmengine.config import DictAction


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local-rank`` as in mmdet."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # ``torch.distributed.launch`` passes ``--local-rank`` since torch 2.0
    # (``--local_rank`` before); torchrun only sets ``LOCAL_RANK``.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, and export ``LOCAL_RANK`` for launchers that only pass it as an
    argument."""
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args
