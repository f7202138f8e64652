"""Tests for handtools.core.hand.mano_io: chumpy-free MANO loading, validation, paths, identity."""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse

from handtools.core.hand import mano_io
from handtools.core.hand.mano_io import (
    load_mano,
    model_identity,
    resolve_model_path,
    synthetic_mano_arrays,
    validate_mano_arrays,
)


def _fake_chumpy_modules() -> dict[str, types.ModuleType]:
    """A stand-in ``chumpy`` package whose classes pickle like chumpy's do.

    ``chumpy.ch.Ch.__getstate__`` pickles ``__dict__`` minus its weak caches, the
    value living in ``x``; expression nodes (``chumpy.reordering.*``) keep operands.
    """
    root = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x, dtype=np.float64)
            self._dirty_vars = set()
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False

        def __getstate__(self):
            return dict(self.__dict__)

    class Select:
        def __init__(self, a, idxs):
            self.a, self.idxs = a, idxs

        def __getstate__(self):
            return dict(self.__dict__)

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Select.__module__, Select.__qualname__ = "chumpy.reordering", "Select"
    ch.Ch, reordering.Select, root.ch, root.reordering = Ch, Select, ch, reordering
    return {"chumpy": root, "chumpy.ch": ch, "chumpy.reordering": reordering}


def _pickle_with_fake_chumpy(build, protocol: int) -> bytes:
    """Pickle ``build(modules)`` while the fake chumpy is importable, then remove it."""
    mods = _fake_chumpy_modules()
    assert not any(name in sys.modules for name in mods), "real chumpy must not be loaded"
    sys.modules.update(mods)
    try:
        return pickle.dumps(build(mods), protocol=protocol)
    finally:
        for name in mods:
            sys.modules.pop(name, None)


def _mano_like_dict(mods, arrays):
    """The official file's layout: some arrays chumpy-wrapped, J_regressor sparse csc."""
    Ch = mods["chumpy.ch"].Ch
    out = dict(arrays)
    for key in ("shapedirs", "posedirs", "v_template", "J", "weights"):
        out[key] = Ch(arrays[key])
    out["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    out["bs_style"], out["bs_type"] = "lbs", "lrotmin"
    return out


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_load_pkl_with_chumpy_objects_without_chumpy(tmp_path, protocol):
    arrays = synthetic_mano_arrays(seed=1)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(_pickle_with_fake_chumpy(lambda m: _mano_like_dict(m, arrays), protocol))
    assert "chumpy" not in sys.modules

    loaded = load_mano(path)

    for key, value in arrays.items():
        if value.dtype.kind in "US":
            assert str(loaded[key]) == str(value)
            continue
        assert isinstance(loaded[key], np.ndarray), key
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)
    assert loaded["J_regressor"].shape == (16, 778)
    assert not scipy.sparse.issparse(loaded["J_regressor"])
    assert str(loaded["bs_style"]) == "lbs"


def test_load_npz_roundtrip(tmp_path):
    arrays = synthetic_mano_arrays(seed=2)
    path = tmp_path / "model.npz"
    np.savez(path, **arrays)
    loaded = load_mano(path)
    for key in mano_io.REQUIRED_SHAPES:
        np.testing.assert_array_equal(loaded[key], arrays[key])


def test_unsupported_chumpy_expression_names_file(tmp_path):
    arrays = synthetic_mano_arrays(seed=3)

    def build(mods):
        out = _mano_like_dict(mods, arrays)
        out["shapedirs"] = mods["chumpy.reordering"].Select(out["shapedirs"], [0, 1])
        return out

    path = tmp_path / "expr.pkl"
    path.write_bytes(_pickle_with_fake_chumpy(build, 2))
    with pytest.raises(ValueError, match=r"expr\.pkl.*chumpy\.reordering\.Select"):
        load_mano(path)


def test_refuses_arbitrary_globals(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": os.getcwd}))  # a global outside the allowlist
    with pytest.raises(ValueError, match="evil.pkl.*refusing"):
        load_mano(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.pop("weights"), "missing weights"),
        (lambda a: a.__setitem__("v_template", a["v_template"][:700]), "v_template has shape"),
        (lambda a: a.__setitem__("weights", a["weights"] * 2), "sum to 1"),
        (lambda a: a.__setitem__("shapedirs", a["shapedirs"][:, :, :5]), "shape directions"),
        (lambda a: a["kintree_table"].__setitem__((0, 5), 0), "kintree_table"),
        (lambda a: a["f"].__setitem__((0, 0), 778), "vertex ids"),
    ],
)
def test_validation_errors_name_the_file(tmp_path, mutate, message):
    arrays = synthetic_mano_arrays(seed=4)
    mutate(arrays)
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"broken.npz.*{message}"):
        load_mano(path)


def test_not_a_dict_pickle(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="list.pkl is not a MANO model"):
        load_mano(path)


def test_validate_accepts_synthetic():
    validate_mano_arrays(synthetic_mano_arrays(seed=5))


def test_resolve_model_path(tmp_path, monkeypatch):
    monkeypatch.delenv(mano_io.MANO_ENV, raising=False)
    assert resolve_model_path(None) is None
    explicit = tmp_path / "a.pkl"
    explicit.write_bytes(b"x")
    env_dir = tmp_path / "models"
    env_dir.mkdir()
    (env_dir / "MANO_RIGHT.pkl").write_bytes(b"y")
    monkeypatch.setenv(mano_io.MANO_ENV, str(env_dir))
    assert resolve_model_path(None) == env_dir / "MANO_RIGHT.pkl"  # env, folder form
    assert resolve_model_path(str(explicit)) == explicit  # explicit beats env
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        resolve_model_path(tmp_path / "nope.pkl")


def test_identity_is_content_hash(tmp_path):
    a, b = tmp_path / "MANO_RIGHT.pkl", tmp_path / "other.pkl"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    ida = model_identity(a)
    assert ida.startswith("MANO_RIGHT.pkl sha256:") and len(ida.split(":")[1]) == 16
    assert ida.split()[1] == model_identity(b).split()[1]
    assert model_identity(a, bundled=True).startswith("open-hand sha256:")
    b.write_bytes(b"different")
    assert ida.split()[1] != model_identity(b).split()[1]


@pytest.mark.skipif(not os.environ.get(mano_io.MANO_ENV), reason="no $HANDTOOLS_MANO")
def test_real_mano_file_loads():
    arrays = load_mano(resolve_model_path(None))
    assert arrays["f"].shape == (1538, 3) and arrays["J_regressor"].shape == (16, 778)
