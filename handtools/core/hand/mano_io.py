"""Reading MANO-format hand models without chumpy.

The official ``MANO_RIGHT.pkl`` is a Python 2 pickle whose arrays are partly
wrapped in ``chumpy.ch.Ch`` objects and whose ``J_regressor`` is a
``scipy.sparse.csc_matrix``. chumpy is unmaintained and does not install on
recent Python/numpy, so :func:`load_mano` unpickles with a restricted
:class:`pickle.Unpickler` that

* maps every ``chumpy.*`` class to :class:`_ChumpyPlaceholder`, which only keeps
  the pickled state (``Ch.__getstate__`` pickles ``__dict__`` minus its caches;
  a plain ``Ch`` keeps its value in ``x``), then turns it into a numpy array;
* rebuilds compressed sparse matrices from their pickled fields
  (``data``, ``indices``, ``indptr``, shape) and densifies them, so old scipy
  module paths (``scipy.sparse.csc``) and attribute layouts do not matter;
* refuses every other global that is not numpy, scipy.sparse or a harmless
  builtin, so loading a model file cannot run arbitrary code.

``.npz`` files (e.g. the bundled open hand model, or smplx's cleaned MANO) are
read with ``allow_pickle=False``.

The result is a ``dict[str, np.ndarray]`` with MANO's key names (``v_template``,
``f``, ``shapedirs``, ``posedirs``, ``J_regressor``, ``weights``,
``kintree_table``, ``hands_components``, ``hands_mean``), validated by
:func:`validate_mano_arrays`.
"""

from __future__ import annotations

import copyreg
import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from handtools.core.hand.joints import (
    MANO_PARENTS,
    NUM_FACES,
    NUM_MANO_JOINTS,
    NUM_POSE_PCA,
    NUM_SHAPE,
    NUM_VERTICES,
)

#: Environment variable naming a MANO model file (or a folder holding MANO_RIGHT.pkl).
MANO_ENV = "HANDTOOLS_MANO"

#: Keys every MANO-format model must provide, with the expected shapes (None = any size).
REQUIRED_SHAPES: dict[str, tuple[int | None, ...]] = {
    "v_template": (NUM_VERTICES, 3),
    "f": (NUM_FACES, 3),
    "shapedirs": (NUM_VERTICES, 3, None),
    "posedirs": (NUM_VERTICES, 3, 9 * (NUM_MANO_JOINTS - 1)),
    "J_regressor": (NUM_MANO_JOINTS, NUM_VERTICES),
    "weights": (NUM_VERTICES, NUM_MANO_JOINTS),
    "kintree_table": (2, NUM_MANO_JOINTS),
    "hands_components": (None, 3 * (NUM_MANO_JOINTS - 1)),
    "hands_mean": (3 * (NUM_MANO_JOINTS - 1),),
}

_ROOT_SENTINELS = (-1, 2**32 - 1)  # MANO stores the root's parent as uint32(-1)


class _ChumpyPlaceholder:
    """Stand-in for any chumpy class: keeps the pickled state, nothing else."""

    _chumpy_name = "chumpy.?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _ChumpyPlaceholder:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # reconstructors may call it
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state

    def to_numpy(self) -> np.ndarray:
        """The chumpy object's value. Only value-holding objects (``Ch`` with ``x``) are
        supported; chumpy expression graphs would need chumpy itself to evaluate."""
        state = self.__dict__.get("_state")
        if isinstance(state, dict) and "x" in state:
            return _to_numpy(state["x"])
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"unsupported chumpy object {self._chumpy_name} (state {keys}); only plain "
            "chumpy.Ch values are supported: convert the file once with chumpy installed"
        )


class _SparsePlaceholder:
    """Stand-in for a pickled scipy compressed sparse matrix (csc/csr)."""

    _format = "csc"

    def __new__(cls, *args: Any, **kwargs: Any) -> _SparsePlaceholder:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state

    def to_numpy(self) -> np.ndarray:
        state = self.__dict__["_state"]
        if isinstance(state, tuple) and len(state) == 2:  # (dict_state, slots_state)
            state = {**(state[0] or {}), **(state[1] or {})}
        shape = state.get("_shape", state.get("shape"))
        try:
            parts = (np.asarray(state["data"]), np.asarray(state["indices"]),
                     np.asarray(state["indptr"]))
        except KeyError as err:
            raise ValueError(f"malformed pickled sparse matrix, missing {err}") from None
        cls = scipy.sparse.csc_matrix if self._format == "csc" else scipy.sparse.csr_matrix
        return np.asarray(cls(parts, shape=tuple(shape)).toarray())


# Builtins a model pickle may legitimately reference (Python 2 names are mapped by
# pickle's fix_imports to these).
_SAFE_BUILTINS = {"object", "set", "frozenset", "list", "dict", "tuple", "slice",
                  "complex", "float", "int", "bool", "bytes", "bytearray", "str"}

# What numpy arrays and scalars need to unpickle (any numpy version).
_SAFE_NUMPY = {"_reconstruct", "scalar", "ndarray", "dtype", "_frombuffer"}


class _MANOUnpickler(pickle.Unpickler):
    """Restricted unpickler: numpy, scipy.sparse, chumpy placeholders, safe builtins."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyPlaceholder,), {"_chumpy_name": f"{module}.{name}"})
        if module.startswith("scipy.sparse"):
            fmt = name[:3]
            if fmt in ("csc", "csr") and name.endswith(("_matrix", "_array")):
                return type(name, (_SparsePlaceholder,), {"_format": fmt})
            if name.endswith(("_matrix", "_array")) and hasattr(scipy.sparse, name):
                return getattr(scipy.sparse, name)
        elif (module == "numpy" or module.startswith("numpy.")) and (
                name in _SAFE_NUMPY or module == "numpy.dtypes"):
            # numpy 2 moved numpy.core to numpy._core; old pickles name the former.
            if module.startswith("numpy.core"):
                module = "numpy._core" + module[len("numpy.core"):]
            return super().find_class(module, name)
        elif module in ("copy_reg", "copyreg") and name in ("_reconstructor", "__newobj__"):
            return getattr(copyreg, name)
        elif module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return super().find_class("builtins", name)
        elif module == "_codecs" and name == "encode":  # bytes in protocol-3 pickles
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _to_numpy(value: Any) -> Any:
    """Convert placeholders and sparse matrices to dense numpy arrays, recursively."""
    if isinstance(value, (_ChumpyPlaceholder, _SparsePlaceholder)):
        return value.to_numpy()
    if scipy.sparse.issparse(value):
        return np.asarray(value.toarray())
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        return _to_numpy(value.item())
    return value


def _as_array(value: Any) -> np.ndarray:
    value = _to_numpy(value)
    if isinstance(value, bytes):
        value = value.decode("latin1")
    return np.asarray(value)


def load_mano(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a MANO-format hand model (``.pkl`` with or without chumpy, or ``.npz``).

    Args:
        path: the model file.

    Returns:
        ``dict[str, np.ndarray]`` with MANO's keys; sparse and chumpy entries are
        dense numpy arrays (dtype as stored, e.g. float64), strings are 0-d str
        arrays. Units are metres. Unknown extra keys are kept.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a MANO-format model (names the file and the
            missing or malformed key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MANO model file not found: {path}")
    data = path.read_bytes()
    if path.suffix == ".npz" or data[:2] == b"PK":
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                raw: dict[str, Any] = {k: npz[k] for k in npz.files}
        except ValueError as err:  # object arrays need pickle: refuse, explain
            raise ValueError(f"{path}: .npz holds Python objects ({err}); store plain "
                             "numeric arrays (dense J_regressor)") from None
    else:
        try:
            raw = _MANOUnpickler(io.BytesIO(data), encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError,
                IndexError, TypeError) as err:
            raise ValueError(f"{path} is not a readable MANO .pkl: {err}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path} is not a MANO model: pickle holds "
                             f"{type(raw).__name__}, expected a dict")
    try:
        arrays = {str(k): _as_array(v) for k, v in raw.items()}
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    validate_mano_arrays(arrays, source=str(path))
    return arrays


def validate_mano_arrays(arrays: dict[str, np.ndarray], source: str = "model") -> None:
    """Check that ``arrays`` is a MANO-format right-hand model; raise ValueError if not.

    Checks presence and shapes of :data:`REQUIRED_SHAPES`, at least ``NUM_SHAPE``
    shape directions and ``NUM_POSE_PCA`` pose components, face indices in range,
    skinning weights summing to 1, and MANO's kinematic tree (``MANO_PARENTS``).
    """
    missing = [k for k in REQUIRED_SHAPES if k not in arrays]
    if missing:
        raise ValueError(f"{source} is not a MANO model: missing {', '.join(missing)}")
    for key, want in REQUIRED_SHAPES.items():
        got = np.shape(arrays[key])
        if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
            shown = tuple("*" if w is None else w for w in want)
            raise ValueError(f"{source}: {key} has shape {got}, expected {shown}")
    if arrays["shapedirs"].shape[2] < NUM_SHAPE:
        raise ValueError(f"{source}: shapedirs has {arrays['shapedirs'].shape[2]} shape "
                         f"directions, expected at least {NUM_SHAPE}")
    if arrays["hands_components"].shape[0] < NUM_POSE_PCA:
        raise ValueError(f"{source}: hands_components has "
                         f"{arrays['hands_components'].shape[0]} components, "
                         f"expected {NUM_POSE_PCA}")
    faces = arrays["f"]
    if not np.issubdtype(faces.dtype, np.integer) or faces.min() < 0 \
            or faces.max() >= NUM_VERTICES:
        raise ValueError(f"{source}: f must hold integer vertex ids in [0, {NUM_VERTICES})")
    if not np.allclose(arrays["weights"].sum(axis=1), 1.0, atol=1e-4):
        raise ValueError(f"{source}: skinning weights do not sum to 1 per vertex")
    parents = np.asarray(arrays["kintree_table"][0]).astype(np.int64)
    if parents[0] not in _ROOT_SENTINELS or tuple(parents[1:]) != MANO_PARENTS[1:]:
        raise ValueError(f"{source}: kintree_table does not match MANO's joint tree "
                         f"{MANO_PARENTS}")
    for key in REQUIRED_SHAPES:
        if not np.all(np.isfinite(arrays[key])):
            raise ValueError(f"{source}: {key} holds non-finite values")


def resolve_model_path(path: str | os.PathLike | None = None) -> Path | None:
    """Which MANO file to use: explicit ``path`` > ``$HANDTOOLS_MANO`` > None.

    None means "use the bundled open hand model". A folder resolves to the
    ``MANO_RIGHT.pkl`` (or ``MANO_RIGHT.npz``) inside it.

    Raises:
        FileNotFoundError: the chosen path (or the model inside the folder) is missing.
    """
    if path is None or str(path) == "":
        env = os.environ.get(MANO_ENV, "")
        if not env:
            return None
        path = env
    p = Path(path).expanduser()
    if p.is_dir():
        for name in ("MANO_RIGHT.pkl", "MANO_RIGHT.npz"):
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"no MANO_RIGHT.pkl or MANO_RIGHT.npz in folder {p}")
    if not p.is_file():
        raise FileNotFoundError(f"MANO model file not found: {p}")
    return p


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_identity(path: str | os.PathLike, bundled: bool = False) -> str:
    """Provenance string for a model file: ``"MANO_RIGHT.pkl sha256:<16 hex>"``, or
    ``"open-hand sha256:<16 hex>"`` for the bundled open model."""
    name = "open-hand" if bundled else Path(path).name
    return f"{name} sha256:{file_sha256(path)[:16]}"


def synthetic_mano_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A random but structurally valid MANO-format model, for tests and examples.

    Not a hand: vertices are scattered in a 10 cm box, faces are random triangles.
    Shapes and invariants match :data:`REQUIRED_SHAPES` (778 vertices, 1538 faces,
    16 joints, 10 shape directions, 45 orthonormal pose components, skinning
    weights summing to 1, a sparse-ish convex J_regressor). Arrays are float64.
    """
    rng = np.random.default_rng(seed)
    nv, nj = NUM_VERTICES, NUM_MANO_JOINTS
    v_template = rng.uniform(-0.05, 0.05, size=(nv, 3))
    faces = np.stack([rng.choice(nv, size=3, replace=False) for _ in range(NUM_FACES)])
    # Each joint regresses from 20 random vertices with convex weights.
    j_reg = np.zeros((nj, nv))
    for j in range(nj):
        idx = rng.choice(nv, size=20, replace=False)
        w = rng.uniform(0.1, 1.0, size=20)
        j_reg[j, idx] = w / w.sum()
    weights = rng.uniform(0.0, 1.0, size=(nv, nj)) ** 4
    weights /= weights.sum(axis=1, keepdims=True)
    kintree = np.stack([np.array(MANO_PARENTS, dtype=np.int64) % 2**32,
                        np.arange(nj)]).astype(np.uint32)
    comps, _ = np.linalg.qr(rng.normal(size=(45, 45)))
    return {
        "v_template": v_template,
        "f": faces.astype(np.uint32),
        "shapedirs": rng.normal(scale=0.003, size=(nv, 3, NUM_SHAPE)),
        "posedirs": rng.normal(scale=0.002, size=(nv, 3, 9 * (nj - 1))),
        "J_regressor": j_reg,
        "J": j_reg @ v_template,
        "weights": weights,
        "kintree_table": kintree,
        "hands_components": comps.T.copy(),  # rows are components
        "hands_mean": rng.normal(scale=0.2, size=45),
        "bs_style": np.asarray("lbs"),
        "bs_type": np.asarray("lrotmin"),
    }
