"""Checks that keep a corrupt HDF5 file from hanging or crashing HDF5 itself.

HDF5 (1.14) reads most of a file's structure through checksummed metadata (new
shards are written in the 1.10 format, see :mod:`handtools.io.shards`), but
variable-length data (the ``source`` strings, and string attributes of shards
written before that) lives in *global heap collections*, which have no checksum.
A flipped bit in an object size there can send HDF5's heap parser into an endless
loop, holding the GIL, so no signal or Python thread can stop it (found by the
shard fuzz test). :func:`vlen_heap_problem` walks the collections a dataset
refers to the way HDF5 does, in Python and bounded, and reports the ones that walk
would not leave cleanly, before HDF5 reads them.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_GCOL = b"GCOL"
#: Filter ids whose chunks we can undo to reach the heap references (none, deflate).
_DEFLATE = 1


def has_hdf5_signature(path: Path, size: int) -> bool:
    """HDF5's superblock signature at offset 0, 512, 1024, 2048, ... (after a user block)."""
    with open(path, "rb") as fh:
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _raw_elements(ds: h5py.Dataset, fh, file_size: int, elem: np.dtype) -> Optional[list[np.ndarray]]:
    """The stored heap references of a variable-length dataset, only those inside its
    extent (a chunk's unused tail is never read by HDF5), or None when they cannot be
    reached without HDF5 (compact layout, filters other than deflate)."""
    plist = ds.id.get_create_plist()
    layout = plist.get_layout()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if any(f != _DEFLATE for f in filters):
        return None
    shape = ds.shape or ()
    out = []
    if layout == h5py.h5d.CHUNKED:
        cshape = ds.chunks
        for i in range(ds.id.get_num_chunks()):
            info = ds.id.get_chunk_info(i)
            if info.byte_offset is None or info.byte_offset + info.size > file_size:
                raise ValueError(f"chunk {i} lies outside the file")
            fh.seek(info.byte_offset)
            data = fh.read(info.size)
            if filters and not info.filter_mask & 1:
                data = zlib.decompress(data)
            n = int(np.prod(cshape))
            if len(data) < n * elem.itemsize:
                raise ValueError(f"chunk {i} is {len(data)} bytes, expected {n * elem.itemsize}")
            refs = np.frombuffer(data[: n * elem.itemsize], dtype=elem).reshape(cshape)
            inside = tuple(slice(0, max(0, min(c, s - o))) for c, s, o in zip(cshape, shape, info.chunk_offset))
            out.append(refs[inside].ravel())
    elif layout == h5py.h5d.CONTIGUOUS:
        offset = ds.id.get_offset()
        n = int(np.prod(shape))
        if offset is None or n == 0:
            return []
        if offset + n * elem.itemsize > file_size:
            raise ValueError("data lies outside the file")
        fh.seek(offset)
        out.append(np.frombuffer(fh.read(n * elem.itemsize), dtype=elem))
    else:
        return None
    return out


def _walk_collection(fh, addr: int, file_size: int, sizeof_size: int) -> Optional[str]:
    """Walk one global heap collection as HDF5's parser does; the problem, or None."""
    header = 8 + sizeof_size  # "GCOL", version, 3 reserved, collection size
    if addr + header > file_size:
        return f"heap collection at {addr} lies outside the file"
    fh.seek(addr)
    head = fh.read(header)
    if head[:4] != _GCOL or head[4] != 1:
        return f"no heap collection at {addr}"
    size = int.from_bytes(head[8:header], "little")
    if size < header or addr + size > file_size:
        return f"heap collection at {addr} has a bad size {size}"
    fh.seek(addr)
    data = fh.read(size)
    objhdr = 8 + sizeof_size  # index, reference count, reserved, object size
    p = header
    while p < size:
        if p + objhdr > size:  # too small for an object: free space (as HDF5 assumes)
            break
        idx = int.from_bytes(data[p : p + 2], "little")
        length = int.from_bytes(data[p + 8 : p + objhdr], "little")
        need = objhdr + ((length + 7) & ~7) if idx > 0 else length
        if need <= 0 or p + need > size:
            return f"heap collection at {addr}: object {idx} of size {length} does not fit"
        p += need
    return None


def vlen_heap_problem(path: Path, ds: h5py.Dataset) -> Optional[str]:
    """Why reading the variable-length dataset ``ds`` of ``path`` could hang HDF5, or None.

    Only the heap collections the dataset refers to are read (a few KiB per shard).
    """
    if ds.dtype.kind != "O" or h5py.check_vlen_dtype(ds.dtype) is None:
        return None
    sizeof_addr, sizeof_size = ds.file.id.get_create_plist().get_sizes()
    elem = np.dtype([("len", "<u4"), ("addr", f"<u{sizeof_addr}"), ("idx", "<u4")])
    file_size = path.stat().st_size
    with open(path, "rb") as fh:
        try:
            pieces = _raw_elements(ds, fh, file_size, elem)
        except (ValueError, zlib.error) as exc:
            return str(exc)
        if pieces is None:
            return None
        addrs: set[int] = set()
        for refs in pieces:
            addrs.update(int(a) for a in np.unique(refs["addr"][refs["len"] > 0]))
        for addr in sorted(addrs):
            problem = _walk_collection(fh, addr, file_size, sizeof_size)
            if problem:
                return problem
    return None
