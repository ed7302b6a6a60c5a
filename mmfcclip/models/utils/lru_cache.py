"""A small bounded mapping for per-vocabulary caches."""
from collections import OrderedDict
from typing import Generic, Hashable, Optional, TypeVar

V = TypeVar('V')


class LRUCache(Generic[V]):
    """Keeps the ``max_size`` most recently used entries.

    A long-running process (a web demo, an evaluation over many data sets)
    sees many vocabularies; per-vocabulary results must not accumulate
    without limit. ``functools.lru_cache`` does not fit because the cached
    values are keyed by data (prompts, vocabularies) rather than by the
    arguments of one function, and must be cleared on demand.

    Args:
        max_size (int): Number of entries kept; at least 1.
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f'max_size must be >= 1, got {max_size}.')
        self.max_size = max_size
        self._data: 'OrderedDict[Hashable, V]' = OrderedDict()

    def get(self, key: Hashable) -> Optional[V]:
        """The value of ``key`` (marked as recently used), or None."""
        if key not in self._data:
            return None
        self._data.move_to_end(key)
        return self._data[key]

    def put(self, key: Hashable, value: V) -> None:
        """Store ``value``, evicting the least recently used entry."""
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.max_size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry."""
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data
