"""Calibrated multi-view captures with depth (a studio rig) -> V-view frames.

Layout (docs/import.md, "multiview")::

    capture/
      cameras.json          {"cameras": [{"name": "cam0", "K": [[fx,0,cx],[0,fy,cy],[0,0,1]],
                                          "T_world_to_cam": [[...4x4...]]}, ...],
                             "depth_scale": 0.001}
      cam0/000000.png       RGB of frame 000000 seen by cam0 (any image format)
      cam0/000000.depth.png depth, uint16 times depth_scale = metres (0 = none),
                            or 000000.depth.npy, float metres
      cam1/...

A frame is every image stem in the first camera's folder; each camera must hold it (and
its depth unless depth is off). ``T_view`` is stored relative to the first camera
(design.md: world = view 0): ``T_view[v] = T_v @ inv(T_0)``; ``T_world_to_cam`` defaults
to the identity. Extrinsic translations are metres.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from handtools.errors import InputError
from handtools.io.datasets.common import Record, check_K
from handtools.io.images import IMAGE_SUFFIXES, read_image


def read_rig(root: Path) -> tuple[list[str], np.ndarray, np.ndarray, float]:
    """cameras.json -> names, K (V, 3, 3), T_view relative to the first camera (V, 4, 4), depth scale."""
    path = Path(root) / "cameras.json"
    if not path.is_file():
        raise InputError(f"{root}: no cameras.json (see docs/import.md, multiview)")
    try:
        data = json.loads(path.read_text())
        cams = data["cameras"]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{path}: expected JSON with a 'cameras' list") from None
    if not isinstance(cams, list) or len(cams) < 2:
        raise InputError(f"{path}: needs at least 2 cameras, got {len(cams) if isinstance(cams, list) else 0}")
    names, ks, ts = [], [], []
    for i, c in enumerate(cams):
        where = f"{path} camera {i}"
        if not isinstance(c, dict) or "name" not in c or "K" not in c:
            raise InputError(f"{where}: needs 'name' and 'K'")
        names.append(str(c["name"]))
        ks.append(check_K(c["K"], where))
        T = np.asarray(c.get("T_world_to_cam", np.eye(4)), dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all() or not np.allclose(T[3], [0, 0, 0, 1]):
            raise InputError(f"{where}: T_world_to_cam must be a finite 4x4 rigid transform")
        if not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-4):
            raise InputError(f"{where}: T_world_to_cam's rotation is not orthonormal")
        ts.append(T)
    if len(set(names)) != len(names):
        raise InputError(f"{path}: camera names repeat")
    scale = float(data.get("depth_scale", 0.001))
    if not scale > 0:
        raise InputError(f"{path}: depth_scale must be positive")
    inv0 = np.linalg.inv(ts[0])
    rel = np.stack([t @ inv0 for t in ts])
    return names, np.stack(ks), rel, scale


def _read_depth(stem: Path, scale: float) -> np.ndarray:
    npy, png = stem.with_name(stem.name + ".depth.npy"), stem.with_name(stem.name + ".depth.png")
    if npy.is_file():
        try:
            d = np.load(npy, allow_pickle=False).astype(np.float32)
        except ValueError:
            raise InputError(f"{npy}: not a numeric .npy array") from None
    elif png.is_file():
        import imageio.v3 as iio

        try:
            raw = np.asarray(iio.imread(png))
        except Exception as exc:  # noqa: BLE001 - imageio raises many types
            raise InputError(f"{png}: unreadable depth image ({type(exc).__name__})") from None
        if raw.ndim != 2 or raw.dtype != np.uint16:
            raise InputError(f"{png}: depth PNG must be single-channel uint16, got {raw.dtype} {raw.shape}")
        d = raw.astype(np.float32) * scale
    else:
        raise InputError(f"{stem}: no depth ({stem.name}.depth.png or .depth.npy)")
    if d.ndim != 2 or not np.isfinite(d).all() or (d < 0).any():
        raise InputError(f"{stem}: depth must be a finite, non-negative 2-D map")
    return d


def multiview_records(root: Path, use_depth: bool = True) -> list[Record]:
    """One :class:`Record` per frame of a capture in the layout of the module docstring
    (a bad frame raises :class:`InputError` when loaded; ``--skip-bad`` skips it)."""
    root = Path(root)
    names, K, T, scale = read_rig(root)
    first = root / names[0]
    if not first.is_dir():
        raise InputError(f"{first}: camera folder missing")
    stems = sorted({p.name.split(".")[0] for p in first.iterdir()
                    if p.suffix.lower() in IMAGE_SUFFIXES and ".depth" not in p.name})
    if not stems:
        raise InputError(f"{first}: no frames")
    records = []
    for stem in stems:
        def load(stem=stem) -> dict:
            imgs, depths = [], []
            for name in names:
                folder = root / name
                found = [p for p in folder.glob(f"{stem}.*")
                         if p.suffix.lower() in IMAGE_SUFFIXES and ".depth" not in p.name] if folder.is_dir() else []
                if not found:
                    raise InputError(f"{folder / stem}: frame missing in camera {name}")
                imgs.append(read_image(found[0]))
                if use_depth:
                    depths.append(_read_depth(folder / stem, scale))
            if len({i.shape for i in imgs}) != 1:
                raise InputError(f"{root}: frame {stem} has images of different sizes")
            h, w = imgs[0].shape[:2]
            for d, name in zip(depths, names):
                if d.shape != (h, w):
                    raise InputError(f"{root / name / stem}: depth is {d.shape[1]}x{d.shape[0]}, image {w}x{h}")
            out = {"images": np.stack(imgs), "K": K.astype(np.float32), "T_view": T.astype(np.float32),
                   "source": f"{root}/{stem}"}
            if use_depth:
                out["depth"] = np.stack(depths)
            return out

        records.append(Record(f"{root}/{stem}", load))
    return records

