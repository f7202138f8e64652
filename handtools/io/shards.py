"""Reading and writing handtools shards (HDF5, schema version 1, see ``docs/design.md``).

* :class:`ShardReader` opens and validates one shard: structure, schema, and the
  values commands rely on (finite floats, pinhole ``K``, ``baseline > 0``); every
  error is one line naming the file and the dataset (:class:`ShardError`), also for
  non-HDF5, truncated and corrupt files (see :mod:`handtools.io.h5safety`).
* :class:`ShardWriter` appends batches, rolls over to a new shard every
  ``shard_size`` samples, writes each shard under a temporary name in the target
  folder and publishes it when complete, durably and without replacing a shard
  another run published meanwhile (:mod:`handtools.durable`); a full disk is a
  :class:`DiskFullError` with the partial shard removed. Datasets a command does not
  touch are copied straight from an input shard, chunk by chunk without re-encoding.
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

import h5py
import numpy as np

from handtools import __version__, durable
from handtools.console import log
from handtools.errors import DiskFullError, InputError, OutputError, OutputExistsError
from handtools.io.h5safety import has_hdf5_signature, vlen_heap_problem
from handtools.io.schema import (
    DATASETS,
    KINDS,
    PER_SAMPLE_CHUNKED,
    PIXEL_DATASETS,
    SCHEMA_VERSION,
    expected_shape,
    value_problem,
)

PathLike = Union[str, os.PathLike]
_STR_DTYPE = h5py.string_dtype(encoding="utf-8")


class ShardError(InputError):
    """A shard is missing, unreadable or does not follow the schema."""


def _h5_reason(exc: BaseException) -> str:
    """One short line from an h5py/HDF5 exception."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _open_failure(path: Path, exc: BaseException) -> str:
    """Why h5py could not open a file that has the HDF5 signature."""
    text = " ".join(str(exc).split())
    m = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text)
    if m:
        return f"truncated HDF5 file ({m[1]} of {m[2]} bytes; an interrupted copy or write?)"
    inner = re.search(r"\((.*)\)", text)
    return f"corrupt HDF5 file ({_h5_reason(inner[1] if inner else text)})"


def _dataset_names(f: h5py.File) -> list[str]:
    names: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            names.append(name)

    f.visititems(visit)
    return names


def _index_text(index) -> str:
    if isinstance(index, slice):
        return f"samples {index.start or 0}..{index.stop - 1 if index.stop is not None else 'end'}"
    if isinstance(index, (int, np.integer)):
        return f"sample {int(index)}"
    if isinstance(index, np.ndarray) and index.size:
        return f"samples {index.ravel()[:4].tolist()}" + ("..." if index.size > 4 else "")
    return "all samples"


def _dtype_ok(name: str, dtype: np.dtype) -> bool:
    want = DATASETS[name][0]
    if want == "str":
        return h5py.check_string_dtype(dtype) is not None
    return dtype == np.dtype(want)


class ShardReader:
    """One shard opened for reading and validated against the schema.

    Args:
        path: the ``.h5`` file.
        require: datasets the caller needs; missing ones raise :class:`ShardError`.
        check_values: check the values of every known float dataset on open (NaN,
            ±inf, non-pinhole ``K``, ``baseline <= 0``; see
            :func:`handtools.io.schema.value_problem`). Only to skip a second check of
            a shard already opened with it (e.g. a DataLoader worker reopening it).

    Raises:
        ShardError: missing, empty, non-HDF5, truncated or corrupt file; malformed
            root attribute; wrong schema version; missing or misshapen dataset; a
            bad value (with the first bad sample); no samples. One line naming the
            file and, where it applies, the dataset.
    """

    def __init__(self, path: PathLike, require: Iterable[str] = (), *, check_values: bool = True):
        self.path = Path(path)
        self._f = None
        if not self.path.exists():
            raise ShardError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise ShardError(f"{self.path}: is a folder, expected a shard file")
        try:
            size = self.path.stat().st_size
            if size == 0:
                raise ShardError(f"{self.path}: empty file (0 bytes), not an HDF5 shard")
            if not has_hdf5_signature(self.path, size):
                raise ShardError(f"{self.path}: not an HDF5 file")
        except OSError as exc:
            raise ShardError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        try:
            self._f = h5py.File(self.path, "r")
        except Exception as exc:  # noqa: BLE001 - h5py raises OSError, RuntimeError, ... on bad files
            raise ShardError(f"{self.path}: {_open_failure(self.path, exc)}") from None
        try:
            self._validate(tuple(require), check_values)
        except ShardError:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt file can fail anywhere in h5py
            self.close()
            raise ShardError(f"{self.path}: corrupt HDF5 file ({_h5_reason(exc)})") from None

    # -- validation ---------------------------------------------------------------
    def _error(self, dataset: Optional[str], message: str) -> ShardError:
        where = f"{self.path}: {dataset}: " if dataset else f"{self.path}: "
        return ShardError(where + message)

    def _int_attr(self, key: str) -> int:
        a = self._f.attrs
        if key not in a:
            raise self._error(None, f"missing root attribute {key!r}")
        v = a[key]
        if isinstance(v, np.ndarray) and v.shape == ():
            v = v[()]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            shown = v.decode(errors="replace") if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v
            text = repr(shown)
            text = text if len(text) <= 40 else text[:37] + "..."
            raise self._error(None, f"root attribute {key!r} is {text}, expected an integer")
        return int(v)

    def _check_heaps(self) -> None:
        """Variable-length data (strings) first: a corrupt heap can hang HDF5 on read, and
        older shards keep their string attributes in the same heap as ``source``."""
        for name in self.names:
            ds = self._f[name]
            if ds.dtype.kind == "O":
                problem = vlen_heap_problem(self.path, ds)
                if problem:
                    raise self._error(name, f"corrupt HDF5 file ({problem})")

    def _validate(self, require: tuple[str, ...], check_values: bool = True) -> None:
        self.names = _dataset_names(self._f)
        self._check_heaps()
        a = self._f.attrs
        if "handtools_schema" not in a:
            raise self._error(None, "not a handtools shard (no 'handtools_schema' attribute)")
        version = self._int_attr("handtools_schema")
        if version != SCHEMA_VERSION:
            raise self._error(
                None, f"schema version {version}, this handtools {__version__} reads version {SCHEMA_VERSION}"
            )
        kind = a.get("kind", "")
        self.kind = kind.decode(errors="replace") if isinstance(kind, bytes) else str(kind)
        if self.kind not in KINDS:
            raise self._error(None, f"unknown kind {self.kind[:40]!r} (expected one of {', '.join(KINDS)})")
        self.num_samples = self._int_attr("num_samples")
        self.num_views = self._int_attr("num_views")
        if self.num_samples <= 0:
            raise self._error(None, "empty shard (0 samples)")
        if self.num_views < 1:
            raise self._error(None, f"num_views is {self.num_views}, expected >= 1")
        producer = a.get("producer", "")
        self.producer = producer.decode(errors="replace") if isinstance(producer, bytes) else str(producer)
        history = a.get("history", "[]")
        try:
            self.history = json.loads(history.decode() if isinstance(history, bytes) else history)
        except (TypeError, ValueError):
            raise self._error(None, "root attribute 'history' is not valid JSON") from None
        if not isinstance(self.history, list) or not all(isinstance(h, dict) for h in self.history):
            raise self._error(None, "root attribute 'history' is not a JSON list of steps")
        self.attrs = {k: (v.decode(errors="replace") if isinstance(v, bytes) else v) for k, v in a.items()}

        for name in require:
            if name not in self._f or not isinstance(self._f[name], h5py.Dataset):
                raise self._error(name, "missing dataset (needed by this command)")
        self.image_size = self._image_size()
        for name in self.names:
            try:
                self._validate_dataset(name, check_values)
            except ShardError:
                raise
            except Exception as exc:  # noqa: BLE001 - corrupt header or data
                raise self._error(name, f"unreadable, file corrupt? ({_h5_reason(exc)})") from None

    def _validate_dataset(self, name: str, check_values: bool) -> None:
        ds = self._f[name]
        if ds.shape is None or ds.shape[:1] != (self.num_samples,):
            n = ds.shape[0] if ds.shape else 0
            raise self._error(name, f"has {n} samples, root attribute says {self.num_samples}")
        if name not in DATASETS:
            return  # unknown datasets are carried through untouched
        if not _dtype_ok(name, ds.dtype):
            raise self._error(name, f"dtype {ds.dtype}, expected {DATASETS[name][0]}")
        want = expected_shape(name, self.num_samples, self.num_views, self.image_size)
        if ds.shape != want:
            raise self._error(name, f"shape {ds.shape}, expected {want}")
        if check_values and ds.dtype.kind == "f" and name not in PIXEL_DATASETS:
            problem = value_problem(name, self._read(name, ()))
            if problem:
                raise self._error(name, problem)

    def _image_size(self) -> Optional[tuple[int, int]]:
        for name, hw_axes in (("images", (2, 3)), ("masks", (2, 3)), ("depth", (2, 3))):
            if name in self._f and self._f[name].ndim >= 4:
                shape = self._f[name].shape
                return int(shape[hw_axes[0]]), int(shape[hw_axes[1]])
        return None

    # -- access -------------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self._f

    def dataset(self, name: str) -> h5py.Dataset:
        """The raw h5py dataset (for chunk-level copies)."""
        if name not in self._f:
            raise self._error(name, "missing dataset")
        return self._f[name]

    def _read(self, name: str, index) -> np.ndarray:
        try:
            out = self._f[name][index]
        except (IndexError, TypeError):
            raise  # a bad index is the caller's error, not the file's
        except Exception as exc:  # noqa: BLE001 - h5py raises OSError, RuntimeError, ValueError, ... on corrupt data
            raise self._error(name, f"unreadable data, file truncated or corrupt? ({_h5_reason(exc)})") from None
        if isinstance(out, bytes):
            out = out.decode()
        return out

    def read(self, name: str, index=()) -> np.ndarray:
        """Read a dataset (all samples, or ``index`` along axis 0).

        Values of known float datasets were checked when the shard was opened
        (finite, valid ``K`` and ``baseline``); per-pixel float data (``depth``),
        too large for that, is checked here, on the samples read. Strings come
        back as ``str`` objects.
        """
        if name not in self._f:
            raise self._error(name, "missing dataset")
        if isinstance(index, np.ndarray) and index.ndim == 1 and index.size > 1:
            # h5py needs increasing fancy indices: read sorted, then restore order.
            order = np.argsort(index)
            data = self._read(name, index[order])
            out = np.empty_like(data)
            out[order] = data
        else:
            out = self._read(name, index)
        if isinstance(out, np.ndarray) and out.dtype.kind == "f" and name in PIXEL_DATASETS:
            if not np.isfinite(out).all():
                what = "NaN" if np.isnan(out).any() else "inf"
                raise self._error(name, f"contains {what} ({_index_text(index)})")
        if isinstance(out, np.ndarray) and out.dtype == object:
            try:
                out = np.array([v.decode() if isinstance(v, bytes) else v for v in out.ravel()],
                               dtype=object).reshape(out.shape)
            except UnicodeDecodeError:
                raise self._error(name, "strings are not valid UTF-8, file corrupt?") from None
        return out

    def read_sample(self, i: int, names: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
        """All (or the named) datasets of sample ``i``."""
        if not 0 <= i < self.num_samples:
            raise IndexError(f"{self.path}: sample {i} out of range 0..{self.num_samples - 1}")
        return {n: self.read(n, i) for n in (names if names is not None else self.names)}

    def summary(self) -> dict:
        """What ``handtools info`` shows: counts, sizes, datasets, provenance."""
        datasets = {}
        for n in self.names:
            try:
                ds = self._f[n]
                datasets[n] = {
                    "shape": list(ds.shape),
                    "dtype": "str" if h5py.check_string_dtype(ds.dtype) else str(ds.dtype),
                    "compression": ds.compression,
                    "chunks": list(ds.chunks) if ds.chunks else None,
                }
            except Exception as exc:  # noqa: BLE001 - corrupt dataset header
                raise self._error(n, f"unreadable, file corrupt? ({_h5_reason(exc)})") from None
        return {
            "path": str(self.path),
            "kind": self.kind,
            "num_samples": self.num_samples,
            "num_views": self.num_views,
            "image_size": list(self.image_size) if self.image_size else None,
            "producer": self.producer,
            "hand_model": self.attrs.get("hand_model"),
            "history": self.history,
            "datasets": datasets,
            "bytes": self.path.stat().st_size,
        }

    def close(self) -> None:
        if getattr(self, "_f", None) is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> "ShardReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def open_shards(paths: Sequence[PathLike], require: Iterable[str] = ()) -> list[ShardReader]:
    """Open and validate every shard before any work starts (fail early)."""
    readers: list[ShardReader] = []
    try:
        for p in paths:
            readers.append(ShardReader(p, require))
    except Exception:
        for r in readers:
            r.close()
        raise
    return readers


def _set_str_attr(attrs, key: str, text: str) -> None:
    """A fixed-length UTF-8 string attribute: stored in the object header (checksummed),
    not in HDF5's global heap, whose corruption can make HDF5 loop forever on read."""
    data = text.encode("utf-8")
    attrs.create(key, np.array(data, dtype=f"S{max(1, len(data))}"),
                 dtype=h5py.string_dtype("utf-8", max(1, len(data))))


def _mb(n: Optional[int]) -> str:
    return "? MB" if n is None else f"{n / 1e6:.1f} MB"


def history_entry(command: str, args: Optional[dict] = None) -> dict:
    """One step of a shard's provenance (``history`` root attribute).

    Inside a running command the step also holds that command's full resolved
    configuration (``config``, :func:`handtools.runconfig.current`), which ``handtools info
    --config`` prints as a TOML file; ``args`` are the settings that define the content.
    """
    from handtools import runconfig

    entry = {
        "command": command,
        "version": __version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in (args or {}).items()},
    }
    config = runconfig.current()
    if config is not None:
        entry["config"] = config
    return entry


def _validate_array(name: str, arr: np.ndarray, num_views: int) -> np.ndarray:
    """Check a known dataset's dtype/shape before it is written; returns it in the schema dtype."""
    if name not in DATASETS:
        return np.asarray(arr)
    dtype, spec = DATASETS[name]
    if dtype == "str":
        return np.asarray([str(s) for s in arr], dtype=object)
    arr = np.asarray(arr)
    if arr.ndim != len(spec):
        raise ValueError(f"dataset {name}: {arr.ndim}-d array, expected shape {spec}")
    for axis, (n, s) in enumerate(zip(arr.shape, spec)):
        if (s == "V" and n != num_views) or (isinstance(s, int) and n != s):
            raise ValueError(f"dataset {name}: shape {arr.shape}, expected {spec} with V={num_views}")
    if np.dtype(dtype).kind == "f":
        arr = arr.astype(dtype, copy=False)
        problem = value_problem(name, arr)
        if problem:
            raise ValueError(f"dataset {name}: {problem} in data to write")
    elif arr.dtype != np.dtype(dtype):
        if np.dtype(dtype) == np.uint8 and (arr.min(initial=0) < 0 or arr.max(initial=0) > 255):
            raise ValueError(f"dataset {name}: values outside 0..255 for uint8")
        arr = arr.astype(dtype)
    return arr


#: HDF5 file format of new shards: 1.10's (superblock v3, object headers v2, extensible-array
#: chunk indexes) checksums every metadata block, so a flipped bit is an error on open instead
#: of a misread, a crash or an endless loop inside HDF5. Readable by HDF5 >= 1.10 (2016).
_LIBVER = ("v110", "latest")

#: A shard is not started with less free space than this in its folder.
MIN_FREE_BYTES = 1 << 20


class ShardWriter:
    """Append samples to shards in ``out_dir``, rolling over every ``shard_size`` samples.

    Each shard is written to a temporary file ``.<name>.tmp-<host>-<pid>-<random>``
    in ``out_dir`` (see :mod:`handtools.durable`), fsync'ed and published as
    ``<name>`` when complete, so readers never see a partial shard. Publishing never
    replaces a shard that appeared meanwhile (another run writing into the same
    folder): that raises :class:`OutputExistsError` unless ``overwrite``. On an
    exception, Ctrl-C or SIGTERM inside the ``with`` block, and on a write error
    (full disk: :class:`DiskFullError`), the partial shard is deleted. Temporary
    files left in ``out_dir`` by killed processes of this host are deleted when the
    first shard is opened.

    Args:
        out_dir: target folder (created if missing).
        kind: ``frames``, ``crops``, ``predictions`` or ``multiview``.
        num_views: V.
        producer: the command that writes (e.g. ``"handtools synth"``).
        history: provenance steps, ending with this command's entry.
        shard_size: samples per shard.
        name: output file name for shard k; a string prefix (``prefix-00000.h5``)
            or a callable ``k -> file name``.
        overwrite: replace existing shards of the same name.
        compression: ``lzf`` (default), ``gzip`` or ``none`` for datasets written here.
        attrs: extra root attributes (e.g. ``hand_model``); JSON-encoded if not scalar.
        on_shard: called with each finished shard's path (commands print it on stdout).
    """

    def __init__(
        self,
        out_dir: PathLike,
        *,
        kind: str,
        num_views: int,
        producer: str,
        history: Sequence[dict] = (),
        shard_size: int = 1000,
        name: Union[str, Callable[[int], str]] = "shard",
        overwrite: bool = False,
        compression: str = "lzf",
        attrs: Optional[dict] = None,
        on_shard: Optional[Callable[[Path], None]] = None,
    ):
        if kind not in KINDS:
            raise ValueError(f"unknown shard kind {kind!r}")
        if shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        if compression not in ("lzf", "gzip", "none"):
            raise ValueError(f"unknown compression {compression!r} (lzf, gzip or none)")
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise OutputExistsError(f"{self.out_dir}: exists and is not a folder")
        self.kind, self.num_views, self.producer = kind, int(num_views), producer
        self.history = list(history)
        self.shard_size = int(shard_size)
        self._name = name if callable(name) else (lambda k, p=name: f"{p}-{k:05d}.h5")
        self.overwrite = overwrite
        self.compression = None if compression == "none" else compression
        self.attrs = dict(attrs or {})
        self.on_shard = on_shard
        self.finished: list[Path] = []
        self._k = 0
        self._f: Optional[h5py.File] = None
        self._file: Optional[durable.LatchingFile] = None
        self._tmp: Optional[Path] = None
        self._final: Optional[Path] = None
        self._n = 0
        self._cleaned = False
        self._last_bytes = 0
        self._copied: set[str] = set()
        first = self.out_dir / self._name(0)
        if first.exists() and not overwrite:
            raise OutputExistsError(f"{first}: exists (use --overwrite to replace)")

    # -- shard lifecycle ------------------------------------------------------------
    def _clean_stale(self) -> None:
        removed, kept = durable.clean_stale_temps(self.out_dir)
        if removed:
            names = ", ".join(p.name for p in removed[:3]) + (", ..." if len(removed) > 3 else "")
            log.warning(f"{self.out_dir}: removed {len(removed)} partial shard(s) left by killed runs ({names})")
        for p in kept:
            info = durable.parse_temp_name(p.name)
            log.info(f"{self.out_dir}: {info.final} is being written by another process "
                     f"(pid {info.pid} on {info.host or '?'}); left alone")

    def _check_space(self, final: Path) -> None:
        free = durable.free_bytes(self.out_dir)
        need = max(MIN_FREE_BYTES, self._last_bytes)
        if free is not None and free < need:
            raise DiskFullError(
                f"disk full: cannot write {final}: {_mb(free)} free in {self.out_dir}, "
                f"a new shard needs at least {_mb(need)}"
            )

    def _open(self) -> None:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._io_error(exc, self.out_dir / self._name(self._k)) from None
        if not self._cleaned:
            self._cleaned = True
            self._clean_stale()
        final = self.out_dir / self._name(self._k)
        if final.exists() and not self.overwrite:
            raise OutputExistsError(f"{final}: exists (use --overwrite to replace)")
        self._check_space(final)
        self._final = final
        self._n = 0
        tmp = durable.temp_path(final)
        with durable.deferred_signals():
            try:
                fd = durable.create_exclusive(tmp)
            except OSError as exc:
                raise self._io_error(exc, final) from None
            self._tmp = tmp
            self._file = durable.LatchingFile(fd)
            try:
                self._f = h5py.File(self._file, "w", libver=_LIBVER)
                a = self._f.attrs
                a["handtools_schema"] = SCHEMA_VERSION
                _set_str_attr(a, "kind", self.kind)
                _set_str_attr(a, "producer", f"{self.producer} {__version__}")
                _set_str_attr(a, "history", json.dumps(self.history))
                a["num_views"] = self.num_views
                a["num_samples"] = 0
                for k, v in self.attrs.items():
                    if isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)):
                        a[k] = v
                    else:
                        _set_str_attr(a, k, v if isinstance(v, str) else json.dumps(v))
            except BaseException:
                self._abort_now()
                raise
        self._check_io()

    def _io_error(self, exc: BaseException, final: Optional[Path] = None) -> Exception:
        """The one-line error for a failed write of ``final``."""
        final = final or self._final
        if not isinstance(exc, OSError):
            return OutputError(f"cannot write {final}: {_h5_reason(exc)}; the partial shard was removed")
        if durable.is_disk_full(exc):
            free = durable.free_bytes(self.out_dir)
            what = "disk full" if exc.errno == errno.ENOSPC else "disk quota exceeded"
            room = f" ({_mb(free)} free in {self.out_dir})" if free is not None else ""
            return DiskFullError(f"{what}: cannot write {final}{room}; the partial shard was removed")
        return OutputError(f"cannot write {final}: {exc.strerror or _h5_reason(exc)}; the partial shard was removed")

    def _check_io(self) -> None:
        """Raise a write error the file latched (and drop the partial shard)."""
        if self._file is not None and self._file.error is not None:
            err = self._file.error
            if isinstance(err, KeyboardInterrupt):
                self.abort()
                raise err
            exc = self._io_error(err)  # before abort frees the space: report what the write met
            self.abort()
            raise exc from None

    def _finish(self) -> None:
        if self._f is None:
            return
        for name in _dataset_names(self._f):
            if self._f[name].shape[0] != self._n:
                raise ValueError(f"dataset {name}: written for {self._f[name].shape[0]} of {self._n} samples")
        final, tmp = self._final, self._tmp
        with durable.deferred_signals():
            try:
                self._f.attrs["num_samples"] = self._n
                self._f.close()
            except Exception as exc:  # noqa: BLE001 - HDF5 failed to flush: drop the shard
                self._file._latch(exc)
            self._f = None
            if self._file.error is None:
                try:
                    self._file.sync()
                except OSError as exc:
                    self._file._latch(exc)
            self._file.close()
            self._check_io()
            self._file = None
            try:
                durable.publish(tmp, final, overwrite=self.overwrite)
            except durable.PublishConflict:
                self.abort()
                raise OutputExistsError(
                    f"{final}: appeared while this run was writing it (another run writing into {self.out_dir}?); "
                    "kept the other one, dropped this run's (use --overwrite to replace)"
                ) from None
            except OSError as exc:
                err = self._io_error(exc, final)
                self.abort()
                raise err from None
            self._tmp = None
        try:
            self._last_bytes = final.stat().st_size
        except OSError:
            pass
        self.finished.append(final)
        if self.on_shard is not None:
            self.on_shard(final)
        self._k += 1

    def _abort_now(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except Exception:  # noqa: BLE001 - the shard is being dropped anyway
                pass
            self._f = None
        if self._file is not None:
            self._file.close()
            self._file = None
        durable.remove_quietly(self._tmp)
        self._tmp = None

    def abort(self) -> None:
        """Drop the shard being written (its temporary file)."""
        with durable.deferred_signals():
            self._abort_now()

    def close(self) -> list[Path]:
        """Finish the current shard; returns every finished shard's path."""
        if self._f is not None and self._n > 0:
            try:
                self._finish()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()
        return self.finished

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- writing --------------------------------------------------------------------
    def _create(self, name: str, sample_shape: tuple, dtype, like: Optional[h5py.Dataset] = None) -> h5py.Dataset:
        if like is not None:
            chunks = like.chunks
            kwargs = dict(
                compression=like.compression,
                compression_opts=like.compression_opts,
                shuffle=like.shuffle,
                fletcher32=like.fletcher32,
            )
            if chunks is None:  # contiguous source: pick chunks ourselves
                chunks, kwargs = True, dict(compression=self.compression)
        else:
            sample_bytes = int(np.prod(sample_shape, dtype=np.int64)) * np.dtype(
                dtype if dtype is not object else np.uint8
            ).itemsize
            if name in PER_SAMPLE_CHUNKED or sample_bytes >= 16 * 1024:
                chunks = (1,) + tuple(sample_shape)
            else:  # small per-sample arrays: ~64 KiB chunks
                rows = max(1, min(self.shard_size, (64 * 1024) // max(sample_bytes, 1)))
                chunks = (rows,) + tuple(sample_shape)
            kwargs = dict(compression=self.compression if dtype is not _STR_DTYPE else None)
        return self._f.create_dataset(
            name,
            shape=(0,) + tuple(sample_shape),
            maxshape=(None,) + tuple(sample_shape),
            dtype=dtype,
            chunks=chunks,
            **kwargs,
        )

    def _write(self, name: str, arr: np.ndarray, start: int) -> None:
        if name not in self._f:
            dtype = _STR_DTYPE if (name in DATASETS and DATASETS[name][0] == "str") or arr.dtype == object else arr.dtype
            self._create(name, arr.shape[1:], dtype)
        ds = self._f[name]
        if ds.shape[1:] != arr.shape[1:]:
            raise ValueError(f"dataset {name}: sample shape {arr.shape[1:]} differs from earlier {ds.shape[1:]}")
        ds.resize(start + len(arr), axis=0)
        ds[start : start + len(arr)] = arr

    def _copy(self, src: ShardReader, name: str, indices: np.ndarray, start: int) -> None:
        s = src.dataset(name)
        if name not in self._f:
            self._create(name, s.shape[1:], s.dtype, like=s)
        d = self._f[name]
        if d.shape[1:] != s.shape[1:] or d.dtype != s.dtype:
            raise ValueError(f"{src.path}: {name}: shape/dtype differ from earlier inputs")
        d.resize(start + len(indices), axis=0)
        same_layout = (
            s.dtype.kind != "O"  # variable-length data (strings) lives in the file's heap, not in the chunk
            and s.chunks is not None
            and s.chunks == d.chunks
            and s.chunks[0] == 1
            and tuple(s.chunks[1:]) == tuple(s.shape[1:])
            and s.compression == d.compression
            and s.shuffle == d.shuffle
            and s.fletcher32 == d.fletcher32
        )
        if same_layout:
            # Raw chunk copy: no decompression or re-encoding.
            zeros = (0,) * (s.ndim - 1)
            for j, i in enumerate(indices):
                try:
                    mask, data = s.id.read_direct_chunk((int(i),) + zeros)
                except Exception as exc:  # noqa: BLE001 - corrupt input chunk
                    raise src._error(name, f"unreadable data at sample {int(i)}, file corrupt? "
                                           f"({_h5_reason(exc)})") from None
                d.id.write_direct_chunk((start + j,) + zeros, data, mask)
        else:
            d[start : start + len(indices)] = src.read(name, np.asarray(indices))

    def append(
        self,
        batch: Optional[dict[str, np.ndarray]] = None,
        *,
        copy_from: Optional[ShardReader] = None,
        indices: Optional[Sequence[int]] = None,
        drop: Iterable[str] = (),
    ) -> None:
        """Append samples.

        Args:
            batch: dataset name -> array with the samples on axis 0 (all the same length).
            copy_from: an input shard whose other datasets are carried through for the
                samples ``indices`` (default: all of them, in order), except those in
                ``batch`` and ``drop``.
        """
        batch = dict(batch or {})
        arrays = {k: _validate_array(k, v, self.num_views) for k, v in batch.items()}
        lengths = {len(v) for v in arrays.values()}
        if copy_from is not None:
            idx = np.arange(copy_from.num_samples) if indices is None else np.asarray(indices, dtype=np.int64)
            lengths.add(len(idx))
            drop = set(drop) | set(arrays)
            carried = [n for n in copy_from.names if n not in drop and not any(n.startswith(d + "/") for d in drop)]
        else:
            idx, carried = None, []
        if len(lengths) > 1:
            raise ValueError(f"batch arrays have different lengths {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        done = 0
        while done < n:
            if self._f is None:
                self._open()
            take = min(self.shard_size - self._n, n - done)
            with durable.deferred_signals():
                for k, v in arrays.items():
                    self._write(k, v[done : done + take], self._n)
                for name in carried:
                    self._copy(copy_from, name, idx[done : done + take], self._n)
            self._check_io()
            self._n += take
            done += take
            if self._n >= self.shard_size:
                self._finish()
