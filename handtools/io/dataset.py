"""A torch ``Dataset`` over many shards, opening HDF5 files lazily in each worker.

h5py handles must not cross ``fork`` (pytorch/pytorch#11929): the index is built
once at construction (files opened, validated and closed), and every worker
process opens its own handles on first access.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch.utils.data

from handtools.io.shards import ShardReader


class ShardDataset(torch.utils.data.Dataset):
    """Samples of many shards as one dataset.

    Args:
        paths: shard files.
        fields: datasets each item returns (e.g. ``["images", "K", "verts3d"]``).
        require: datasets every shard must have (default: ``fields``).

    Items are ``dict[name -> np.ndarray]`` (per-sample slices) plus ``"index"``
    (global sample index) and ``"shard"`` (shard number).
    """

    def __init__(self, paths: Sequence[os.PathLike], fields: Sequence[str], require: Optional[Sequence[str]] = None):
        self.paths = [Path(p) for p in paths]
        self.fields = list(fields)
        require = list(fields if require is None else require)
        counts, views, sizes = [], set(), set()
        for p in self.paths:
            with ShardReader(p, require) as r:
                counts.append(r.num_samples)
                views.add(r.num_views)
                if r.image_size is not None:
                    sizes.add(r.image_size)
        if len(views) > 1:
            raise ValueError(f"shards mix view counts {sorted(views)}; give shards with the same number of views")
        self.num_views = views.pop() if views else 1
        self.image_size = sizes.pop() if len(sizes) == 1 else None
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._readers: dict[int, ShardReader] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(shard number, sample within shard) of a global index."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        s = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return s, int(index - self._offsets[s])

    def _reader(self, s: int) -> ShardReader:
        if os.getpid() != self._pid:  # forked into a worker: drop inherited handles
            self._readers = {}
            self._pid = os.getpid()
        r = self._readers.get(s)
        if r is None:  # values were checked when the index was built: skip re-reading them per worker
            r = self._readers[s] = ShardReader(self.paths[s], self.fields, check_values=False)
        return r

    def __getitem__(self, index: int) -> dict:
        s, i = self.locate(int(index))
        item = self._reader(s).read_sample(i, self.fields)
        item["index"] = np.int64(index)
        item["shard"] = np.int64(s)
        return item

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_readers"] = {}
        return state

    def close(self) -> None:
        for r in self._readers.values():
            r.close()
        self._readers = {}
