"""Readers that turn image files, videos and public hand datasets into samples.

Each reader is a plain function that lists the samples of a source as
:class:`~handtools.io.datasets.common.Record` objects (labels parsed and converted,
pixels not yet read) and a ``*_samples`` generator that loads them. A loaded
sample is a dict of numpy arrays named and shaped like the shard schema without
the leading N axis (``images`` (V, H, W, 3) uint8, ``K`` (V, 3, 3), ``joints3d``
(21, 3) metres, ...), already in the conventions of ``docs/design.md``: metres,
OpenCV camera frame, FreiHAND 21-joint order, right hands, and pixel coordinates
with pixel ``i`` covering ``[i, i + 1)``.

* :mod:`.media`: image files, videos, stereo pairs (``handtools import images|video|stereo``).
* :mod:`.freihand`, :mod:`.stb`, :mod:`.ho3d`: the datasets (see ``docs/import.md``).
"""

from handtools.io.datasets.common import Record, load_all

__all__ = ["Record", "load_all"]
