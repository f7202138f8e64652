"""HO-3D v2/v3 (Hampali et al., CVPR 2020): a right hand manipulating YCB objects.

Layout::

    <root>/<split>/<seq>/rgb/<frame>.jpg   (v3; .png in v2), 640x480
    <root>/<split>/<seq>/meta/<frame>.pkl  pickled dict per frame

``split`` is ``train`` or ``evaluation``. A train meta holds ``handJoints3D``
(21, 3) metres, ``camMat`` (3, 3), ``handPose`` (48,), ``handBeta`` (10,),
``handTrans`` (3,) (and object labels, not imported). Evaluation metas hold only the
root joint ``handJoints3D`` (3,) and ``handBoundingBox`` (4,): that split imports
images, K and the box.

Conversions to ``docs/design.md``:

1. Frame: HO-3D's camera is OpenGL-style (y up, z backward). Points go to OpenCV
   by flipping y and z, ``p' = diag(1, -1, -1) p`` (a 180-degree turn about x, a
   proper rotation), and the MANO global rotation (``handPose[:3]``) becomes
   ``diag(1, -1, -1) R``. ``handTrans`` is not imported: in the new frame it depends
   on the shape-dependent rest wrist position, which needs the MANO model.
2. Joint order: HO-3D stores MANO's 16 joints then the five tips (thumb, index,
   middle, ring, little); ``ours = ho3d[MANO_TO_FREIHAND]`` (the HO-3D toolkit's
   ``jointsMapManoToSimple``).
3. Units are metres already; K gets the half-pixel shift of :func:`common.K_from_opencv`.
4. ``mano/pose`` uses HO-3D's convention (``flat_hand_mean=True``).

The ``.pkl`` files are read with an unpickler that only builds numpy arrays and
plain Python values (a dataset file must not be able to run code).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from handtools.core.hand.joints import MANO_TO_FREIHAND
from handtools.errors import InputError
from handtools.io.datasets.common import (
    OnBad,
    Record,
    K_from_opencv,
    bad,
    finite,
    keypoints_and_bbox,
    read_views,
    rotate_axis_angle,
)

SPLITS = ("train", "evaluation")
IMAGE_SIZE = (480, 640)
#: OpenGL camera (y up, z backward) -> OpenCV camera (y down, z forward).
GL_TO_CV = np.diag([1.0, -1.0, -1.0])
FLAT_HAND_MEAN = True

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("__builtin__", "set"),
}


class _SafeUnpickler(pickle.Unpickler):
    # pickle has no safe mode; this allow-list admits numpy arrays and builtins only.
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        module = module.replace("numpy.core.", "numpy._core.").replace("__builtin__", "builtins")
        return super().find_class(module, name)


def read_meta(path: Path) -> dict:
    """One HO-3D ``meta/*.pkl`` as a dict (Python 2 pickles included); errors name the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: unreadable ({exc.strerror or exc})") from None
    try:
        meta = _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # corrupt pickles raise many types
        raise InputError(f"{path}: not a readable HO-3D meta pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a dict, got {type(meta).__name__}")
    return meta


def convert_meta(meta: dict, where: str, with_joints: bool = True) -> dict:
    """Labels of one HO-3D frame in our conventions.

    Returns ``K`` (1, 3, 3) and, for train frames (``with_joints``), ``joints3d``
    (21, 3) m OpenCV frame our order, ``mano/pose`` (48,), ``mano/shape`` (10,),
    ``keypoints2d`` (1, 21, 3), ``bbox`` (1, 4); for evaluation frames ``bbox``
    from ``handBoundingBox`` when present.
    """
    if meta.get("camMat") is None:
        raise InputError(f"{where}: no camMat (unannotated frame)")
    K = K_from_opencv(finite(meta["camMat"], where, "camMat", (3, 3)))[None]
    lab: dict = {"K": K}
    T = np.eye(4)[None]
    if with_joints:
        if meta.get("handJoints3D") is None:
            raise InputError(f"{where}: handJoints3D is None (unannotated frame)")
        j = finite(meta["handJoints3D"], where, "handJoints3D", (21, 3))
        j = j[list(MANO_TO_FREIHAND)] @ GL_TO_CV.T
        lab["joints3d"] = j.astype(np.float32)
        if meta.get("handPose") is not None and meta.get("handBeta") is not None:
            pose = finite(np.ravel(meta["handPose"]), where, "handPose", (48,)).copy()
            pose[:3] = rotate_axis_angle(GL_TO_CV, pose[:3])
            lab["mano/pose"] = pose.astype(np.float32)
            lab["mano/shape"] = finite(np.ravel(meta["handBeta"]), where, "handBeta", (10,)).astype(np.float32)
        lab["keypoints2d"], lab["bbox"] = keypoints_and_bbox(j, K, T, IMAGE_SIZE)
    elif meta.get("handBoundingBox") is not None:
        box = finite(np.ravel(meta["handBoundingBox"]), where, "handBoundingBox", (4,))
        lab["bbox"] = box.astype(np.float32)[None]
    return lab


def ho3d_records(
    root: Path, split: str = "train", seqs: Optional[Sequence[str]] = None, *, on_bad: OnBad = None
) -> list[Record]:
    """HO-3D frames of ``split``, labels read and converted (see the module docstring).

    Args:
        root: folder holding ``train/`` and/or ``evaluation/``. seqs: sequence names
            (default: every folder of the split, sorted).
        on_bad: skip frames whose meta is missing, unreadable or unannotated, or whose
            image is broken, instead of failing.

    Returns:
        Records whose samples hold ``images`` (1, 480, 640, 3), ``K``, ``source`` and
        the labels of :func:`convert_meta`.
    """
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    base = root / split
    if not base.is_dir():
        raise InputError(f"{base}: no such folder (is the HO-3D root right?)")
    names = list(seqs) if seqs else sorted(p.name for p in base.iterdir() if (p / "rgb").is_dir())
    if not names:
        raise InputError(f"{base}: no <sequence>/rgb folders")
    records: list[Record] = []
    for seq in names:
        rgb = base / seq / "rgb"
        if not rgb.is_dir():
            bad(on_bad, f"{rgb}: no such folder")
            continue
        frames = sorted(p for p in rgb.iterdir() if p.suffix.lower() in (".jpg", ".png"))
        if not frames:
            bad(on_bad, f"{rgb}: no .jpg or .png frames")
            continue
        for img in frames:
            meta_path = base / seq / "meta" / f"{img.stem}.pkl"
            if not meta_path.is_file():
                bad(on_bad, f"{meta_path}: no such file (labels of {img.name})")
                continue
            try:
                lab = convert_meta(read_meta(meta_path), str(meta_path), with_joints=split == "train")
            except InputError as exc:
                bad(on_bad, str(exc))
                continue
            records.append(_record(img, lab, f"ho3d/{split}/{seq}/{img.stem}"))
    return records


def _record(img: Path, lab: dict, name: str) -> Record:
    def load() -> dict:
        return dict(lab, images=read_views([img], IMAGE_SIZE), source=str(img))

    return Record(name, load, (img,))
