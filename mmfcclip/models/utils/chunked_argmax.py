"""Argmax over the first dimension of scores computed a block at a time."""
from typing import Callable, Optional

import torch
from torch import Tensor


class RunningArgmax:
    """The argmax over rows of a tensor given one block of rows at a time.

    Blocks must come in increasing row order. Each block is reduced with
    ``max(dim=0)`` and merged into a running maximum; ties and NaNs resolve
    to the first row, as ``argmax`` does, so :attr:`index` ends as the
    argmax of the whole tensor.

    Attributes:
        best (Tensor | None): The running maximum (...).
        index (Tensor | None): Its row, int64 (...).
    """

    def __init__(self) -> None:
        self.best: Optional[Tensor] = None
        self.index: Optional[Tensor] = None

    def update(self, block: Tensor,
               rows: Optional[Tensor] = None,
               offset: int = 0) -> Optional[Tensor]:
        """Merge one block.

        Args:
            block (Tensor): Scores (n, ...).
            rows (Tensor, optional): Row numbers of the block's rows (n, );
                defaults to ``offset + arange(n)``.
            offset (int): Row number of the block's first row, when
                ``rows`` is not given.

        Returns:
            Tensor | None: The block's own argmax (..., into ``block``),
            and where it took over (bool (...), None for the first block),
            as a pair; callers that follow a value of the winning row use
            them.
        """
        value, local = block.max(dim=0)
        row = local + offset if rows is None else rows[local]
        if self.best is None:
            self.best, self.index = value, row
            return local, None
        better = (value > self.best) | (value.isnan() & ~self.best.isnan())
        self.best = torch.where(better, value, self.best)
        self.index = torch.where(better, row, self.index)
        return local, better


def chunked_argmax(scores: Callable[[int, int], Tensor], num: int,
                   chunk: int) -> Tensor:
    """``torch.cat([scores(i, i + chunk) ...]).argmax(0)`` without building
    the full (num, ...) score tensor.

    Used where FC-CLIP takes an argmax over classes of full-resolution maps
    (semantic: up to 847 class maps): the full tensor costs memory (3.4 GB
    for ADE-847's semantic map at 800 x 1333), and ``argmax`` over the
    outermost dimension is slow on CPU (0.81 s for 250 x 640 x 640 vs
    0.24 s in blocks of 32, measured on a 2-core AVX2 CPU). Blocks are
    reduced to a running maximum (:class:`RunningArgmax`), so the indices
    are those of the full tensor.

    Args:
        scores (Callable[[int, int], Tensor]): ``scores(start, end)``
            returns the rows ``[start, end)``, shape (end - start, ...).
        num (int): Number of rows; at least 1.
        chunk (int): Rows per block; 0 or less: all at once.

    Returns:
        Tensor: Indices (...), int64.
    """
    chunk = chunk if chunk > 0 else num
    argmax = RunningArgmax()
    for start in range(0, num, chunk):
        argmax.update(scores(start, min(start + chunk, num)), offset=start)
    return argmax.index
