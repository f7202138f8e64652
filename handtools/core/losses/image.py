"""Image losses of the binocular method (Chen et al., ICCV 2021, §3.2): photo-consistency
(eq. 3 with SSIM eq. 4) and the silhouette (mask) loss (eq. 7). Images are float in [0, 1].
"""

from __future__ import annotations

from pytorch_msssim import ssim
from torch import Tensor

from handtools.core.geometry.checks import check_tensor
from handtools.core.losses.reduction import batch_mean

#: SSIM / L1 balance of eq. 3. The paper does not give its value; 0.85 is
#: Monodepth's (Godard et al., CVPR 2017), whose loss has the same form.
PHOTO_ALPHA = 0.85
#: Gaussian SSIM window (pytorch_msssim): 7 px, sigma 1.5 -- the usual sigma with a
#: window small enough for 64-256 px crops (pytorch_msssim's default is 11).
SSIM_WIN_SIZE = 7
SSIM_WIN_SIGMA = 1.5


def photo_consistency_loss(
    img_tgt: Tensor,
    img_warped: Tensor,
    mask: Tensor,
    alpha: float = PHOTO_ALPHA,
    weight: Tensor | None = None,
    win_size: int = SSIM_WIN_SIZE,
    win_sigma: float = SSIM_WIN_SIGMA,
) -> Tensor:
    """Photo-consistency loss (eq. 3, SSIM eq. 4):
    ``alpha / 2 (1 - SSIM(~I M, I M)) + (1 - alpha) ||(~I - I) M||_1``.

    As in the paper, both images are multiplied by the mask (hand region only,
    background zero in both) and SSIM is the mean SSIM of these masked images
    (``pytorch_msssim.ssim``, Gaussian window, K = (0.01, 0.03), data range 1; that
    library returns per-image means, not per-pixel maps, which is what eq. 3 uses).
    The L1 term is the mean absolute difference over mask pixels and channels.

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

    Returns:
        Scalar, dimensionless (0 for identical masked images).
    """
    name = "photo_consistency_loss"
    check_tensor(img_tgt, "img_tgt", (None, None, None, None))
    B, C, H, W = img_tgt.shape
    check_tensor(img_warped, "img_warped", (B, C, H, W))
    if mask.ndim == 4:
        if mask.shape[1] != 1:
            raise ValueError(f"{name}: mask must be (B, H, W) or (B, 1, H, W), got {tuple(mask.shape)}")
        mask = mask[:, 0]
    if tuple(mask.shape) != (B, H, W):
        raise ValueError(f"{name}: mask must be ({B}, {H}, {W}), got {tuple(mask.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{name}: alpha must be in [0, 1], got {alpha}")
    if win_size % 2 != 1 or win_size > min(H, W):
        raise ValueError(f"{name}: win_size must be odd and <= min(H, W) = {min(H, W)}, got {win_size}")
    m = mask.to(img_tgt.dtype)[:, None]  # (B, 1, H, W)
    x = img_warped.to(img_tgt.dtype) * m  # (B, C, H, W)
    y = img_tgt * m
    ssim_b = ssim(x, y, data_range=1.0, size_average=False, win_size=win_size,
                  win_sigma=win_sigma)  # (B,)
    area = (m.flatten(1).sum(1) * C).clamp_min(1.0)  # (B,)
    l1_b = (x - y).abs().flatten(1).sum(1) / area  # (B,)
    per_sample = 0.5 * alpha * (1.0 - ssim_b) + (1.0 - alpha) * l1_b  # (B,)
    return batch_mean(per_sample, weight, name)


def mask_loss(silhouette: Tensor, mask: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mask loss (eq. 7): ``||M - ~M||^2``, as the mean over pixels of the squared difference.

    (The mean, not the sum, so the value does not depend on the crop size; for
    binary images it is the fraction of pixels that disagree, i.e. also their L1.)

    Args:
        silhouette: (B, H, W) float in [0, 1], rendered from the predicted mesh
            (``RenderOutput.silhouette``, antialiased so it has gradients).
        mask: (B, H, W) float or bool in [0, 1], the ground-truth / skin mask.
        weight: optional (B,) per-sample weights.

    Returns:
        Scalar, dimensionless in [0, 1].
    """
    name = "mask_loss"
    check_tensor(silhouette, "silhouette", (None, None, None))
    if tuple(mask.shape) != tuple(silhouette.shape):
        raise ValueError(f"{name}: mask must be {tuple(silhouette.shape)}, got {tuple(mask.shape)}")
    per_sample = ((silhouette - mask.to(silhouette.dtype)) ** 2).flatten(1).mean(1)  # (B,)
    return batch_mean(per_sample, weight, name)
