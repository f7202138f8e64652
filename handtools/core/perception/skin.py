"""Hand masks from skin colour, refined by 2D keypoints, and masks drawn from keypoints.

The binocular self-supervised paper (Chen et al., ICCV 2021, Sec. 3.3) removes the
background of its photo-consistency loss with hand masks "obtained by existing skin
detecting methods". We follow that with a fixed colour-space rule plus keypoint-guided
clean-up:

1. Skin colour (OpenCV colour spaces, thresholds from the literature):

   * ``ycrcb`` (default): Chai & Ngan, "Face segmentation using skin-color map in
     videophone applications", IEEE TCSVT 9(4), 1999: ``133 <= Cr <= 173`` and
     ``77 <= Cb <= 127`` (8-bit, OpenCV's ``COLOR_RGB2YCrCb``). Luma is ignored, which
     makes the rule fairly robust to shading and to skin tone.
   * ``hsv``: Sobottka & Pitas, "A novel method for automatic face segmentation, facial
     feature extraction and tracking", Signal Processing: Image Communication 12(3),
     1998: ``0 <= H <= 50 deg`` and ``0.23 <= S <= 0.68`` (OpenCV: ``H in [0, 25]``,
     ``S in [59, 173]``).
   * ``both``: pixels passing both rules.

2. With keypoints: keep skin inside the hand region (the keypoint skeleton mask of
   :func:`keypoint_mask`, or the keypoints' convex hull) grown by ``margin`` of the hand
   scale, then only the connected components that touch the hand skeleton.
3. Morphological opening (removes speckles) and closing (fills small holes), elliptical
   kernels sized relative to the hand when keypoints are given.

All masks are (H, W) uint8 with values 0 and 255.
"""

from __future__ import annotations

import cv2
import numpy as np

from handtools.core.hand.joints import BONES, NUM_JOINTS

SKIN_METHODS = ("ycrcb", "hsv", "both")

#: Chai & Ngan (1999) Cr/Cb box, 8-bit values.
YCRCB_CR_RANGE = (133, 173)
YCRCB_CB_RANGE = (77, 127)
#: Sobottka & Pitas (1998) H/S box in OpenCV's 8-bit HSV (H in [0, 180), S in [0, 255]).
HSV_H_RANGE = (0, 25)
HSV_S_RANGE = (59, 173)

#: Palm polygon of the 21-joint order: wrist, thumb CMC, and the four finger MCPs.
PALM_JOINTS = (0, 1, 5, 9, 13, 17)
#: Finger capsule width as a fraction of the hand scale (see ``hand_scale``): a finger is
#: about 1.8 cm wide for a 9-10 cm wrist-to-MCP distance.
FINGER_WIDTH_FRACTION = 0.2


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be an (H, W, 3) uint8 RGB array, got "
            f"{getattr(image, 'shape', type(image))}"
        )
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB, got dtype {image.dtype}")
    return image


def _as_hands(keypoints, min_confidence: float = 0.0) -> list[np.ndarray]:
    """(21, 2|3) or (N, 21, 2|3) keypoints -> list of (21, 2) float32 pixel arrays, one per
    hand, with NaN rows for joints whose confidence (third column, if any) is below
    ``min_confidence``; hands with no usable joint are dropped."""
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[1] != NUM_JOINTS or kp.shape[2] not in (2, 3):
        raise ValueError(
            f"keypoints must be (21, 2|3) or (N, 21, 2|3) pixels, got {np.shape(keypoints)}"
        )
    hands = []
    for hand in kp:
        uv = hand[:, :2].copy()
        if hand.shape[1] == 3:
            uv[hand[:, 2] < min_confidence] = np.nan
        if not np.isfinite(uv).all(axis=1).any():
            continue
        hands.append(uv)
    return hands


def hand_scale(keypoints: np.ndarray) -> float:
    """Hand scale in pixels: the largest wrist-to-MCP distance or the index-to-little MCP
    span, whichever is larger (robust to a foreshortened palm).

    Args:
        keypoints: (21, 2+) pixels, FreiHAND order; NaN rows are ignored.

    Returns:
        Scale in pixels, at least 1.
    """
    uv = np.asarray(keypoints, dtype=np.float64)[:, :2]
    cands = [np.linalg.norm(uv[0] - uv[i]) for i in (5, 9, 13, 17)]
    cands.append(np.linalg.norm(uv[5] - uv[17]))
    cands = [c for c in cands if np.isfinite(c)]
    if not cands:  # palm not visible: fall back to the keypoints' extent
        finite = uv[np.isfinite(uv).all(1)]
        cands = [0.5 * float(np.ptp(finite, axis=0).max())] if len(finite) > 1 else [1.0]
    return max(float(max(cands)), 1.0)


def keypoint_mask(keypoints, image_size: tuple[int, int], finger_width: float | None = None,
                  min_confidence: float = 0.0) -> np.ndarray:
    """Hand mask drawn from 2D keypoints: filled palm polygon plus one capsule per bone.

    Args:
        keypoints: (21, 2|3) or (N, 21, 2|3) float, u, v in pixels (FreiHAND order),
            optional confidence; joints with confidence below ``min_confidence`` are left
            out. Several hands are drawn into one mask.
        image_size: (W, H) of the mask in pixels.
        finger_width: capsule width in pixels; default ``FINGER_WIDTH_FRACTION`` times
            :func:`hand_scale` of each hand.
        min_confidence: confidence threshold for using a joint.

    Returns:
        (H, W) uint8 mask, 0 or 255.
    """
    w, h = (int(t) for t in image_size)
    if w < 1 or h < 1:
        raise ValueError(f"image_size must be positive (W, H), got {image_size}")
    mask = np.zeros((h, w), np.uint8)
    shift = 4  # draw with 1/16-pixel precision
    scale = float(1 << shift)
    for uv in _as_hands(keypoints, min_confidence):
        width = finger_width if finger_width is not None else FINGER_WIDTH_FRACTION * hand_scale(uv)
        thick = max(int(round(width)), 1)
        # OpenCV draws pixel centres at integer coordinates; ours are at i + 0.5.
        pts = np.round((uv - 0.5) * scale)
        ok = np.isfinite(pts).all(1)
        pts = np.where(ok[:, None], pts, 0).astype(np.int32)                    # (21, 2)
        palm = [pts[j] for j in PALM_JOINTS if ok[j]]
        if len(palm) >= 3:
            hull = cv2.convexHull(np.array(palm, np.int32))
            cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_8, shift=shift)
        for p, c in BONES:
            if ok[p] and ok[c]:
                cv2.line(mask, tuple(pts[p]), tuple(pts[c]), 255, thick, cv2.LINE_8, shift)
        for j in range(NUM_JOINTS):
            if ok[j]:
                cv2.circle(mask, tuple(pts[j]), int(round(0.5 * width * scale)), 255, -1,
                           cv2.LINE_8, shift)
    return mask


def skin_colour_mask(image: np.ndarray, method: str = "ycrcb") -> np.ndarray:
    """Per-pixel skin-colour rule (see the module docstring for thresholds and sources).

    Args:
        image: (H, W, 3) uint8 RGB.
        method: ``'ycrcb'``, ``'hsv'`` or ``'both'``.

    Returns:
        (H, W) uint8 mask, 0 or 255, before any clean-up.
    """
    _check_image(image)
    if method not in SKIN_METHODS:
        raise ValueError(f"method must be one of {SKIN_METHODS}, got {method!r}")
    out = None
    if method in ("ycrcb", "both"):
        ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
        out = cv2.inRange(ycc, (0, YCRCB_CR_RANGE[0], YCRCB_CB_RANGE[0]),
                          (255, YCRCB_CR_RANGE[1], YCRCB_CB_RANGE[1]))
    if method in ("hsv", "both"):
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        m = cv2.inRange(hsv, (HSV_H_RANGE[0], HSV_S_RANGE[0], 0),
                        (HSV_H_RANGE[1], HSV_S_RANGE[1], 255))
        out = m if out is None else cv2.bitwise_and(out, m)
    return out


def _ellipse(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _grow(mask: np.ndarray, radius: float) -> np.ndarray:
    """Dilate a 0/255 mask by a Euclidean ``radius`` in pixels. A distance transform is
    used instead of ``cv2.dilate`` because its cost does not grow with the radius."""
    if radius <= 0:
        return mask
    dist = cv2.distanceTransform(cv2.bitwise_not(mask), cv2.DIST_L2, cv2.DIST_MASK_5)
    return np.where(dist <= radius, 255, 0).astype(np.uint8)


# Over 80 lines with its docstring (20 lines, the method's reference); the body is about 65 lines of one
# pipeline (colour threshold -> keypoint region -> morphology -> component choice) whose steps share masks.
def skin_mask(image: np.ndarray, keypoints=None, method: str = "ycrcb",
              region: str = "skeleton", margin: float = 0.15,
              open_radius: int | None = None, close_radius: int | None = None,
              min_confidence: float = 0.0) -> np.ndarray:
    """Hand mask from skin colour, refined by keypoints when given.

    Args:
        image: (H, W, 3) uint8 RGB.
        keypoints: optional (21, 2|3) or (N, 21, 2|3) float, u, v in pixels (+ confidence).
            When given, only skin inside the hand region grown by ``margin`` x hand scale,
            in connected components touching the keypoint skeleton (:func:`keypoint_mask`),
            is kept.
        method: skin rule, see :func:`skin_colour_mask`.
        region: ``'skeleton'`` (default): the :func:`keypoint_mask` (palm + finger
            capsules), tighter, excludes background between spread fingers; ``'hull'``:
            the convex hull of the keypoints.
        margin: growth of the region as a fraction of :func:`hand_scale`.
        open_radius, close_radius: morphology kernel radii in pixels; default 2% and 4%
            of the hand scale with keypoints (at least 1 px), 1 and 3 px without.
        min_confidence: joints below this confidence are ignored.

    Returns:
        (H, W) uint8 mask, 0 or 255.
    """
    _check_image(image)
    if region not in ("skeleton", "hull"):
        raise ValueError(f"region must be 'skeleton' or 'hull', got {region!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    h, w = image.shape[:2]
    hands = _as_hands(keypoints, min_confidence) if keypoints is not None else []
    if keypoints is not None and not hands:
        return np.zeros((h, w), np.uint8)
    scale = max((hand_scale(uv) for uv in hands), default=0.0)
    r_open = open_radius if open_radius is not None else (
        max(int(round(0.02 * scale)), 1) if hands else 1)
    r_close = close_radius if close_radius is not None else (
        max(int(round(0.04 * scale)), 1) if hands else 3)
    if r_open < 0 or r_close < 0:
        raise ValueError("open_radius and close_radius must be >= 0")
    if not hands:
        mask = skin_colour_mask(image, method)
        if r_open:
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _ellipse(r_open))
        if r_close:
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _ellipse(r_close))
        return mask

    # Work inside the region of interest only: the hands' keypoints grown by the margin
    # plus the morphology radii (keeps the cost independent of the image size).
    pts = np.concatenate([uv[np.isfinite(uv).all(1)] for uv in hands])           # (M, 2)
    pad = max(margin * scale, 0.5 * FINGER_WIDTH_FRACTION * scale) + 2 * (r_open + r_close) + 2
    x0 = int(np.clip(np.floor(pts[:, 0].min() - pad), 0, w))
    y0 = int(np.clip(np.floor(pts[:, 1].min() - pad), 0, h))
    x1 = int(np.clip(np.ceil(pts[:, 0].max() + pad), 0, w))
    y1 = int(np.clip(np.ceil(pts[:, 1].max() + pad), 0, h))
    out = np.zeros((h, w), np.uint8)
    if x1 <= x0 or y1 <= y0:
        return out
    roi = np.ascontiguousarray(image[y0:y1, x0:x1])
    hands_roi = [uv - np.array([x0, y0], np.float32) for uv in hands]
    size = (x1 - x0, y1 - y0)

    mask = skin_colour_mask(roi, method)
    if r_open:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _ellipse(r_open))
    skeleton = keypoint_mask(np.stack(hands_roi), size)
    allowed = np.zeros_like(mask)
    for uv in hands_roi:
        if region == "skeleton":
            one = keypoint_mask(uv, size)
        else:
            one = np.zeros_like(mask)
            finite = uv[np.isfinite(uv).all(1)]
            cv2.fillConvexPoly(one, cv2.convexHull(np.round(finite - 0.5).astype(np.int32)), 255)
        allowed |= _grow(one, margin * hand_scale(uv))
    mask &= allowed
    # Keep the connected components that touch the hands' skeletons.
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    if n > 1:
        touching = np.unique(labels[(skeleton > 0) & (mask > 0)])
        keep = np.zeros(n, bool)
        keep[touching[touching > 0]] = True
        mask = np.where(keep[labels], 255, 0).astype(np.uint8)
    if r_close:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _ellipse(r_close))
    out[y0:y1, x0:x1] = mask
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (non-zero = foreground).

    Args:
        a, b: (H, W) arrays of the same shape, any dtype (0/255 uint8 or bool).

    Returns:
        IoU in [0, 1]; 1.0 when both masks are empty.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    fa, fb = a != 0, b != 0
    union = np.count_nonzero(fa | fb)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(fa & fb)) / union
