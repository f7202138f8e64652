"""Image losses of the binocular method (Chen et al., ICCV 2021, §3.2): photo-consistency
(eq. 3 with SSIM eq. 4) and the silhouette (mask) loss (eq. 7). Images are float in [0, 1].
"""

from __future__ import annotations

from pytorch_msssim import ssim
from torch import Tensor
from torch.nn import functional as F

from handtools.core.geometry.checks import check_tensor
from handtools.core.losses.reduction import batch_mean, check_reduction

#: SSIM / L1 balance of eq. 3. The paper does not give its value; 0.85 is
#: Monodepth's (Godard et al., CVPR 2017), whose loss has the same form.
PHOTO_ALPHA = 0.85
#: Gaussian SSIM window (pytorch_msssim): 7 px, sigma 1.5 -- the usual sigma with a
#: window small enough for 64-256 px crops (pytorch_msssim's default is 11).
SSIM_WIN_SIZE = 7
SSIM_WIN_SIGMA = 1.5
#: Regions the SSIM term of eq. 3 can be averaged over (see :func:`photo_consistency_terms`).
SSIM_REGIONS = ("mask", "crop")


def _check_photo_args(img_tgt, img_warped, mask, win_size, name):
    check_tensor(img_tgt, "img_tgt", (None, None, None, None))
    B, C, H, W = img_tgt.shape
    check_tensor(img_warped, "img_warped", (B, C, H, W))
    if mask.ndim == 4:
        if mask.shape[1] != 1:
            raise ValueError(f"{name}: mask must be (B, H, W) or (B, 1, H, W), got {tuple(mask.shape)}")
        mask = mask[:, 0]
    if tuple(mask.shape) != (B, H, W):
        raise ValueError(f"{name}: mask must be ({B}, {H}, {W}), got {tuple(mask.shape)}")
    if win_size % 2 != 1 or win_size > min(H, W):
        raise ValueError(f"{name}: win_size must be odd and <= min(H, W) = {min(H, W)}, got {win_size}")
    return mask


def photo_consistency_terms(
    img_tgt: Tensor,
    img_warped: Tensor,
    mask: Tensor,
    win_size: int = SSIM_WIN_SIZE,
    win_sigma: float = SSIM_WIN_SIGMA,
    ssim_region: str = "mask",
) -> tuple[Tensor, Tensor]:
    """The two per-sample parts of eq. 3: ``1 - SSIM`` and the L1 difference of the
    masked images, each averaged over the hand.

    Both images are multiplied by the mask (background zero in both). SSIM is
    ``pytorch_msssim.ssim`` (Gaussian window, K = (0.01, 0.03), data range 1), which
    returns the mean of the SSIM map over every window position of the crop. Where a
    window sees no mask pixel both masked images are 0 in it and its SSIM is exactly
    1, so the crop mean is ``1 - (A_R / A) (1 - SSIM_R)`` with ``A`` the number of
    window positions, ``A_R`` those whose window touches the mask and ``SSIM_R`` their
    mean. ``ssim_region="mask"`` (default) returns ``1 - SSIM_R`` -- the hand's own
    dissimilarity, recovered exactly from the library's crop mean -- so, like the L1
    term (mean over mask pixels and channels), it does not shrink when the hand fills
    less of the crop. ``"crop"`` returns ``1 - SSIM`` over the whole crop (the
    previous behaviour; the SSIM share of eq. 3 then falls with the hand's area).

    Args:
        img_tgt: (B, C, H, W) float in [0, 1], the real view (``I_r``).
        img_warped: (B, C, H, W) float, the other view warped into it (``~I_r``).
        mask: (B, H, W) or (B, 1, H, W) float/bool in [0, 1], the hand mask ``M_r``.
        win_size, win_sigma: Gaussian SSIM window (odd size <= H, W) and sigma, pixels.
        ssim_region: ``"mask"`` or ``"crop"``.

    Returns:
        ``(dssim, l1)``: two (B,) tensors, dimensionless; both 0 for identical masked
        images and for an empty mask.
    """
    name = "photo_consistency_terms"
    mask = _check_photo_args(img_tgt, img_warped, mask, win_size, name)
    if ssim_region not in SSIM_REGIONS:
        raise ValueError(f"{name}: ssim_region must be one of {SSIM_REGIONS}, got {ssim_region!r}")
    C = img_tgt.shape[1]
    m = mask.to(img_tgt.dtype)[:, None]  # (B, 1, H, W)
    x = img_warped.to(img_tgt.dtype) * m  # (B, C, H, W)
    y = img_tgt * m
    ssim_b = ssim(x, y, data_range=1.0, size_average=False, win_size=win_size,
                  win_sigma=win_sigma)  # (B,) mean over every window position
    dssim = 1.0 - ssim_b
    if ssim_region == "mask":
        touched = F.max_pool2d((m > 0).to(m.dtype), win_size, stride=1)  # (B, 1, H-w+1, W-w+1) windows on the hand
        frac = touched.flatten(1).mean(1)  # (B,) A_R / A
        dssim = dssim / frac.clamp_min(1.0 / touched[0].numel())  # empty mask: dssim is 0 anyway
    area = (m.flatten(1).sum(1) * C).clamp_min(1.0)  # (B,)
    l1_b = (x - y).abs().flatten(1).sum(1) / area  # (B,)
    return dssim, l1_b


def photo_consistency_loss(
    img_tgt: Tensor,
    img_warped: Tensor,
    mask: Tensor,
    alpha: float = PHOTO_ALPHA,
    weight: Tensor | None = None,
    win_size: int = SSIM_WIN_SIZE,
    win_sigma: float = SSIM_WIN_SIGMA,
    ssim_region: str = "mask",
) -> Tensor:
    """Photo-consistency loss (eq. 3, SSIM eq. 4):
    ``alpha / 2 (1 - SSIM(~I M, I M)) + (1 - alpha) ||(~I - I) M||_1``, both parts
    averaged over the hand (:func:`photo_consistency_terms`).

    Args:
        img_tgt: (B, C, H, W) float in [0, 1], the real view (``I_r``).
        img_warped: (B, C, H, W) float, the other view warped into it (``~I_r``,
            from ``stereo.warp_with_disparity``; 0 where the warp is invalid).
        mask: (B, H, W) or (B, 1, H, W) float/bool in [0, 1], the hand mask ``M_r``
            (the paper: the ground-truth / skin mask of the target view). Pixels
            where the mask is on but the warp is invalid count as mismatches, which
            pulls the mesh over the mask.
        alpha: SSIM weight in [0, 1]; the paper does not state it, 0.85 is Monodepth's.
        weight: optional (B,) per-sample weights.
        win_size, win_sigma: Gaussian SSIM window (odd size <= H, W) and sigma, pixels.
        ssim_region: ``"mask"`` (default: SSIM averaged over the windows on the hand,
            like L1 over the hand) or ``"crop"`` (over the whole crop).

    Returns:
        Scalar, dimensionless (0 for identical masked images).
    """
    name = "photo_consistency_loss"
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{name}: alpha must be in [0, 1], got {alpha}")
    dssim, l1_b = photo_consistency_terms(img_tgt, img_warped, mask, win_size, win_sigma, ssim_region)
    per_sample = 0.5 * alpha * dssim + (1.0 - alpha) * l1_b  # (B,)
    return batch_mean(per_sample, weight, name)


def mask_loss(silhouette: Tensor, mask: Tensor, weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """Mask loss (eq. 7): ``||M - ~M||^2`` over pixels.

    ``reduction="sum"`` is eq. 7 as printed (the number of disagreeing pixels for
    binary images, so it grows with the crop's area); ``"mean"`` divides by the pixel
    count (the fraction of disagreeing pixels), so the value and its balance against
    the other terms do not depend on the crop size. ``sum = mean * H * W``.

    Args:
        silhouette: (B, H, W) float in [0, 1], rendered from the predicted mesh
            (``RenderOutput.silhouette``, antialiased so it has gradients).
        mask: (B, H, W) float or bool in [0, 1], the ground-truth / skin mask.
        weight: optional (B,) per-sample weights.
        reduction: ``"mean"`` or ``"sum"`` over pixels.

    Returns:
        Scalar, dimensionless: in [0, 1] (mean) or [0, H W] (sum).
    """
    name = "mask_loss"
    check_reduction(reduction, ("mean", "sum"), name)
    check_tensor(silhouette, "silhouette", (None, None, None))
    if tuple(mask.shape) != tuple(silhouette.shape):
        raise ValueError(f"{name}: mask must be {tuple(silhouette.shape)}, got {tuple(mask.shape)}")
    sq = ((silhouette - mask.to(silhouette.dtype)) ** 2).flatten(1)  # (B, H W)
    per_sample = sq.sum(1) if reduction == "sum" else sq.mean(1)  # (B,)
    return batch_mean(per_sample, weight, name)
