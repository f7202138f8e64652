"""Unlabelled media: image files, video frames and rectified stereo pairs.

Every sample gets ``images``, ``K`` and ``source``; stereo samples also ``T_view``
and ``baseline``. Without calibration the intrinsics are a guess
(:data:`~handtools.io.datasets.common.FOCAL_GUESS_FACTOR` times the long side,
principal point at the centre). All samples of one import must have one image
size: mixed sizes are refused unless ``resize`` = (H, W) letterboxes every frame
(scale to fit, keep the aspect, pad with black) with its intrinsics updated.
"""

from __future__ import annotations

import glob
import json
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from handtools.errors import InputError
from handtools.io.datasets.common import OnBad, Record, bad, check_K, guess_K, K_from_opencv, letterbox
from handtools.io.images import IMAGE_SUFFIXES, list_images, read_image

_GLOB_CHARS = set("*?[")


def expand_image_inputs(items: Sequence[str]) -> list[Path]:
    """Files, folders (their images, sorted) and globs -> image paths in the given order.

    A missing file, an empty folder or a glob matching no image is an error naming it.
    """
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if _GLOB_CHARS & set(item) and not p.exists():
            found = sorted(Path(m) for m in glob.glob(item, recursive=True))
            found = [m for m in found if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
            if not found:
                raise InputError(f"{item}: pattern matches no images")
            out.extend(found)
        elif p.is_dir():
            out.extend(list_images(p))
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    if not out:
        raise InputError("no input images given")
    return out


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file from its header (Pillow), reading the pixels only if needed."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
        return int(h), int(w)
    except Exception:  # not a format Pillow knows: read it (errors name the file)
        return tuple(read_image(path).shape[:2])  # type: ignore[return-value]


def _sizes(paths: Sequence[Path], on_bad: OnBad, split: bool = False) -> dict[Path, tuple[int, int]]:
    sizes: dict[Path, tuple[int, int]] = {}
    for p in paths:
        try:
            h, w = image_size(p)
        except InputError as exc:
            bad(on_bad, str(exc))
            continue
        sizes[p] = (h, w // 2) if split else (h, w)
    return sizes


def _one_size(sizes: dict[Path, tuple[int, int]], what: str = "images") -> None:
    groups: dict[tuple[int, int], list[Path]] = defaultdict(list)
    for p, hw in sizes.items():
        groups[hw].append(p)
    if len(groups) > 1:
        ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
        desc = "; ".join(f"{w}x{h}: {len(ps)} (e.g. {ps[0]})" for (h, w), ps in ranked[:3])
        if len(ranked) > 3:
            desc += f"; and {len(ranked) - 3} more sizes"
        raise InputError(f"{what} have different sizes ({desc}); give --resize WxH to letterbox them to one size")


def _fit(img: np.ndarray, K: np.ndarray, resize: Optional[tuple[int, int]]):
    if resize is None or img.shape[:2] == tuple(resize):
        return img, K
    return letterbox(img, K, resize)


def image_records_by_size(
    paths: Sequence[Path], *, focal: Optional[float] = None, on_bad: OnBad = None
) -> dict[tuple[int, int], list[Record]]:
    """Image records grouped by image size (H, W), for one shard series per size."""
    sizes = _sizes(paths, on_bad)
    groups: dict[tuple[int, int], list[Path]] = {}
    for p, hw in sizes.items():
        groups.setdefault(hw, []).append(p)
    return {hw: image_records(ps, focal=focal, on_bad=on_bad) for hw, ps in sorted(groups.items())}


def image_records(
    paths: Sequence[Path],
    *,
    focal: Optional[float] = None,
    resize: Optional[tuple[int, int]] = None,
    on_bad: OnBad = None,
) -> list[Record]:
    """One mono sample per image file.

    Args:
        paths: image files. focal: focal length in pixels of the original images
            (None: the guess). resize: (H, W) to letterbox every image to; None
            requires all images to have one size.
        on_bad: skip unreadable images instead of failing (see :func:`common.bad`).

    Returns:
        Records whose samples hold ``images`` (1, H, W, 3), ``K`` (1, 3, 3) and
        ``source`` (the file path).
    """
    sizes = _sizes(paths, on_bad)
    if resize is None:
        _one_size(sizes)

    def make(p: Path) -> Record:
        def load() -> dict:
            img = read_image(p)
            img, K = _fit(img, guess_K(img.shape[:2], focal), resize)
            return {"images": img[None], "K": K[None], "source": str(p)}

        return Record(str(p), load, (p,))

    return [make(p) for p in sizes]


def video_samples(
    path: Path,
    *,
    every: int = 1,
    focal: Optional[float] = None,
    resize: Optional[tuple[int, int]] = None,
    max_frames: Optional[int] = None,
) -> Iterator[Record]:
    """Every ``every``-th frame of a video (any format imageio reads), decoded in order.

    Yields records with ``images`` (1, H, W, 3), ``K`` (1, 3, 3) and ``source``
    ``"<path>#<frame index>"``. A frame of a different size than the first is an
    error unless ``resize`` is given.
    """
    import imageio.v3 as iio

    if every < 1:
        raise ValueError("every must be >= 1")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        frames = iio.imiter(path)
        first_hw = None
        kept = 0
        for i, frame in enumerate(frames):
            if i % every:
                continue
            if max_frames is not None and kept >= max_frames:
                break
            frame = np.asarray(frame)
            if frame.ndim == 2:
                frame = np.repeat(frame[..., None], 3, -1)
            frame = np.ascontiguousarray(frame[..., :3]).astype(np.uint8, copy=False)
            if first_hw is None:
                first_hw = frame.shape[:2]
            elif resize is None and frame.shape[:2] != first_hw:
                raise InputError(f"{path}: frame {i} is {frame.shape[1]}x{frame.shape[0]}, first frame "
                                 f"{first_hw[1]}x{first_hw[0]} (give --resize WxH)")
            img, K = _fit(frame, guess_K(frame.shape[:2], focal), resize)
            sample = {"images": img[None], "K": K[None], "source": f"{path}#{i}"}
            kept += 1
            yield Record(sample["source"], (lambda s=sample: s), (path,))
    except InputError:
        raise
    except Exception as exc:  # imageio/plugins raise many types for unreadable videos
        raise InputError(f"{path}: unreadable video ({type(exc).__name__}: {exc})") from None
    if first_hw is None:
        raise InputError(f"{path}: no frames decoded")


# --------------------------------------------------------------------------- stereo
def read_calibration(path: Path) -> dict:
    """A stereo calibration file: JSON (or YAML when PyYAML is installed).

    Format (``docs/import.md``)::

        {"K_left": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
         "K_right": [[...], [...], [...]],
         "baseline": 0.12,            # metres, right camera along +x
         "image_size": [W, H]}        # optional: checked against the frames

    K are those of the rectified views in OpenCV's convention (pixel centres at
    integers, as ``cv2.stereoRectify`` returns them in P1/P2); they are converted to
    handtools' half-pixel convention here.

    Returns:
        dict with ``K`` (2, 3, 3) float32, ``baseline`` float and ``image_size``
        (H, W) or None.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such calibration file")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise InputError(f"{path}: YAML needs PyYAML (pip install pyyaml), or write the calibration as JSON")
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}"
                         f" ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an object with K_left, K_right and baseline")
    missing = [k for k in ("K_left", "K_right", "baseline") if k not in data]
    if missing:
        raise InputError(f"{path}: missing {', '.join(missing)}")
    Kl = check_K(data["K_left"], f"{path}: K_left")
    Kr = check_K(data["K_right"], f"{path}: K_right")
    try:
        baseline = float(data["baseline"])
    except (TypeError, ValueError):
        raise InputError(f"{path}: baseline is not a number") from None
    if not np.isfinite(baseline) or baseline <= 0:
        raise InputError(f"{path}: baseline must be a positive number of metres, got {data['baseline']!r}")
    size = data.get("image_size")
    hw = None
    if size is not None:
        try:
            w, h = (int(x) for x in size)
        except (TypeError, ValueError):
            raise InputError(f"{path}: image_size must be [W, H]") from None
        hw = (h, w)
    return {"K": K_from_opencv(np.stack([Kl, Kr])), "baseline": baseline, "image_size": hw}


def stereo_rig(baseline: float) -> np.ndarray:
    """(2, 4, 4) T_view of a rectified pair: identity, and the right camera at +baseline along x."""
    T = np.repeat(np.eye(4, dtype=np.float32)[None], 2, 0)
    T[1, 0, 3] = -baseline
    return T


def stereo_records(
    pairs: Sequence[tuple[Path, Optional[Path]]],
    *,
    baseline: float,
    K: Optional[np.ndarray] = None,
    calib_hw: Optional[tuple[int, int]] = None,
    focal: Optional[float] = None,
    resize: Optional[tuple[int, int]] = None,
    on_bad: OnBad = None,
) -> list[Record]:
    """Rectified stereo samples (V=2: view 0 left, view 1 right).

    Args:
        pairs: (left file, right file), or (side-by-side file, None) whose left half
            is the left view and right half the right view (an odd width drops the
            last column).
        baseline: metres (> 0). K: (2, 3, 3) intrinsics in handtools' convention
            (from :func:`read_calibration`); None: the guess from ``focal``.
        calib_hw: (H, W) the calibration is for; frames of another size are an error.
        resize: (H, W) to letterbox both views to.

    Returns:
        Records whose samples hold ``images`` (2, H, W, 3), ``K`` (2, 3, 3),
        ``T_view`` (2, 4, 4), ``baseline`` and ``source`` (``"left | right"`` or the file).
    """
    if not baseline > 0:
        raise ValueError("baseline must be positive (metres)")
    T = stereo_rig(baseline)
    sizes: dict[tuple, tuple[int, int]] = {}
    for left, right in pairs:
        if right is None:
            s = _sizes([left], on_bad, split=True)
            if left in s:
                sizes[(left, None)] = s[left]
            continue
        s = _sizes([left, right], on_bad)
        if left in s and right in s:
            if s[left] != s[right]:
                bad(on_bad, f"{right}: right view is {s[right][1]}x{s[right][0]}, left view {left} is "
                            f"{s[left][1]}x{s[left][0]}")
                continue
            sizes[(left, right)] = s[left]
    if calib_hw is not None:
        for key, hw in list(sizes.items()):
            if hw != calib_hw:
                bad(on_bad, f"{key[0]}: view is {hw[1]}x{hw[0]}, the calibration is for {calib_hw[1]}x{calib_hw[0]}")
                del sizes[key]
    if resize is None:
        _one_size({k[0]: v for k, v in sizes.items()}, "stereo frames")

    def make(left: Path, right: Optional[Path]) -> Record:
        def load() -> dict:
            if right is None:
                both = read_image(left)
                half = both.shape[1] // 2
                views = [both[:, :half], both[:, half : 2 * half]]
            else:
                views = [read_image(left), read_image(right)]
                if views[0].shape != views[1].shape:
                    raise InputError(f"{right}: right view size differs from {left}")
            hw = views[0].shape[:2]
            Ks = K if K is not None else np.stack([guess_K(hw, focal)] * 2)
            out = [_fit(np.ascontiguousarray(v), k, resize) for v, k in zip(views, Ks)]
            return {
                "images": np.stack([o[0] for o in out]),
                "K": np.stack([o[1] for o in out]).astype(np.float32),
                "T_view": T,
                "baseline": np.float32(baseline),
                "source": str(left) if right is None else f"{left} | {right}",
            }

        files = (left,) if right is None else (left, right)
        return Record(str(left), load, files)

    return [make(left, right) for left, right in sizes]
