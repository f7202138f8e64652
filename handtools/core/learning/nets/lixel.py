"""Image-to-lixel mesh regressor (Moon & Lee, I2L-MeshNet, ECCV 2020) as the binocular model uses it.

Chen et al. (ICCV 2021, supplementary §2, Fig. 1) decode the encoder's last
feature map into one 1D heatmap ("lixel" = line pixel) per mesh vertex and axis:

1. three upsampling stages (4×4 transposed convolution, stride 2, + BN + ReLU):
   8×8 → 64×64 at 256² input, 2048 → 256 channels for ResNet-50;
2. average pooling along the rows (→ x features) and along the columns (→ y features);
3. a 1×1 convolution per axis to 778 channels: the 1D heatmaps;
4. soft-argmax (Sun et al., ECCV 2018) to continuous (u, v).

The monocular/pre-training variant adds z the I2L way: the globally pooled
encoder feature goes through a 1×1 convolution to ``hidden × D`` channels
(+ BN + ReLU), is reshaped to a length-D sequence of ``hidden`` channels, and a
1×1 convolution gives each vertex a 1D depth heatmap of D bins.

Coordinate conventions (one place, used by every caller):

* **Pixels**: pixel ``i`` covers the interval ``[i, i + 1)``, so its centre is
  ``i + 0.5`` and an image of width W spans ``[0, W]``. Heatmap bin ``k`` covers
  ``[k, k + 1)`` in heatmap units, and one heatmap unit is ``stride`` (4) input
  pixels, so ``u_pixels = u_heatmap * stride``. A heatmap peaked in bin ``k``
  gives ``u = (k + 0.5) * stride``; a flat heatmap gives the image centre ``W / 2``.
* **Depth**: ``z`` is in metres relative to the root joint (training targets are
  root-relative); the D bins cover ``[-depth_range / 2, +depth_range / 2]``
  (I2L-MeshNet uses 0.3 m for FreiHAND, i.e. ±0.15 m), so a flat depth heatmap gives 0.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from handtools.core.hand.joints import NUM_VERTICES

#: Downsampling of the lixel heatmaps w.r.t. the input image: encoder stride 32, three ×2 upsamplings.
LIXEL_STRIDE = 4


def soft_argmax_1d(heatmaps: torch.Tensor) -> torch.Tensor:
    """Soft-argmax of 1D heatmap logits (Sun et al., ECCV 2018, Eq. 3) in bin-centre units.

    ``x = sum_k softmax(h)_k * (k + 0.5)``: bin ``k`` covers ``[k, k + 1)``.

    Args:
        heatmaps: (..., L) float logits (un-normalised), any device.

    Returns:
        (...) same dtype: expected coordinate in ``[0.5, L - 0.5]`` heatmap units.
    """
    if heatmaps.ndim < 1 or heatmaps.shape[-1] < 1:
        raise ValueError(f"heatmaps must be (..., L) with L >= 1, got {tuple(heatmaps.shape)}")
    if not heatmaps.is_floating_point():
        raise ValueError(f"heatmaps must be floating point, got {heatmaps.dtype}")
    length = heatmaps.shape[-1]
    centres = torch.arange(length, device=heatmaps.device, dtype=heatmaps.dtype) + 0.5  # (L,)
    return (F.softmax(heatmaps, dim=-1) * centres).sum(-1)


def bias_for_mean(mean: torch.Tensor, length: int, sigma: float = 1.5, iters: int = 40) -> torch.Tensor:
    """Logits over ``length`` bins whose soft-argmax is exactly ``mean`` (bin-centre units).

    A discretised Gaussian of width ``sigma`` bins, its centre shifted (bisection) so
    that the truncated distribution's expectation equals ``mean`` even near the ends.

    Args:
        mean: (N,) float, targets in ``(0.5, length - 0.5)`` (clamped 0.05 bins inside).
        length: L, bins. sigma: Gaussian width in bins (> 0).

    Returns:
        (N, L) logits, same dtype/device as ``mean``.
    """
    if mean.ndim != 1 or length < 2 or not sigma > 0:
        raise ValueError(f"need mean (N,), length >= 2, sigma > 0; got {tuple(mean.shape)}, {length}, {sigma}")
    target = mean.clamp(0.55, length - 0.55)
    centres = torch.arange(length, device=mean.device, dtype=mean.dtype) + 0.5  # (L,)
    lo = torch.full_like(target, -4.0 * length)
    hi = torch.full_like(target, 5.0 * length)

    def logits(mu):
        return -((centres[None] - mu[:, None]) ** 2) / (2 * sigma**2)  # (N, L)

    for _ in range(iters):  # expectation grows monotonically with the Gaussian's centre
        mid = (lo + hi) / 2
        too_high = soft_argmax_1d(logits(mid)) > target
        hi = torch.where(too_high, mid, hi)
        lo = torch.where(too_high, lo, mid)
    return logits((lo + hi) / 2)


def _deconv_stage(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [
        nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


class LixelRegressor(nn.Module):
    """Mesh regressor: encoder features → per-vertex 1D heatmaps → (u, v[, z]).

    Args:
        in_channels: channels of the encoder feature map (2048 ResNet-50, 512 ResNet-18/34).
        num_vertices: mesh vertices (778 for the MANO topology).
        hidden_channels: channels after upsampling; default ``in_channels // 8``
            (2048 → 256 as in the paper; scaled down for small encoders: 512 → 64).
        with_z: also regress root-relative depth (pre-training / monocular model).
        depth_bins: D, bins of the depth heatmap (64 in I2L-MeshNet).
        depth_range: metres covered by the D bins, centred on the root (0.3 → ±0.15 m).
        heatmap_size: (h, w) bins of the x/y heatmaps (input size / 4); when given, the
            regressor holds per-bin prior logits that :meth:`init_mean` sets to a mean hand.

    ``forward(features, return_heatmaps=False)`` with ``features`` (B, C, h, w) returns a dict:

    * ``uv``: (B, V, 2) float, input-image pixels (pixel ``i`` covers ``[i, i + 1)``);
    * ``z``: (B, V) float, metres relative to the root, only if ``with_z``;
    * with ``return_heatmaps``: ``heatmap_x`` (B, V, 8w), ``heatmap_y`` (B, V, 8h)
      and, if ``with_z``, ``heatmap_z`` (B, V, D): the logits before soft-argmax.

    Note: with ``with_z`` the z branch has a BatchNorm1d over a length-1 sequence,
    so training needs batches of at least 2 (as I2L-MeshNet).
    """

    def __init__(
        self,
        in_channels: int = 2048,
        num_vertices: int = NUM_VERTICES,
        hidden_channels: int | None = None,
        with_z: bool = True,
        depth_bins: int = 64,
        depth_range: float = 0.3,
        heatmap_size: tuple[int, int] | None = None,
    ):
        super().__init__()
        if in_channels < 1 or num_vertices < 1:
            raise ValueError(f"in_channels and num_vertices must be positive, got {in_channels}, {num_vertices}")
        hidden = hidden_channels if hidden_channels is not None else max(in_channels // 8, 1)
        if hidden < 1 or depth_bins < 1 or not depth_range > 0:
            raise ValueError(
                f"need hidden_channels >= 1, depth_bins >= 1, depth_range > 0; got {hidden}, {depth_bins}, {depth_range}"
            )
        self.in_channels = in_channels
        self.num_vertices = num_vertices
        self.hidden_channels = hidden
        self.with_z = with_z
        self.depth_bins = depth_bins
        self.depth_range = float(depth_range)
        self.stride = LIXEL_STRIDE

        self.deconv = nn.Sequential(  # (B, C, h, w) -> (B, hidden, 8h, 8w)
            *_deconv_stage(in_channels, hidden), *_deconv_stage(hidden, hidden), *_deconv_stage(hidden, hidden)
        )
        self.conv_x = nn.Conv1d(hidden, num_vertices, kernel_size=1)
        self.conv_y = nn.Conv1d(hidden, num_vertices, kernel_size=1)
        if with_z:
            self.conv_z_1 = nn.Sequential(
                nn.Conv1d(in_channels, hidden * depth_bins, kernel_size=1),
                nn.BatchNorm1d(hidden * depth_bins),
                nn.ReLU(inplace=True),
            )
            self.conv_z_2 = nn.Conv1d(hidden, num_vertices, kernel_size=1)

        # Per-bin prior logits added before the soft-argmax: zeros (none) until init_mean sets a mean hand.
        if heatmap_size is not None:
            hb, wb = (int(x) for x in heatmap_size)
            self.register_buffer("prior_x", torch.zeros(num_vertices, wb))
            self.register_buffer("prior_y", torch.zeros(num_vertices, hb))
        else:
            self.prior_x = self.prior_y = None
        self.register_buffer("prior_z", torch.zeros(num_vertices, depth_bins) if with_z else None)

        # Initialisation as I2L-MeshNet: small normal weights for the transposed convolutions.
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @torch.no_grad()
    def init_mean(self, uv: torch.Tensor, z: torch.Tensor | None = None,
                  weight_std: float = 1e-3, sigma: float = 1.5) -> None:
        """Start from a mean hand: the untrained heads decode to ``uv`` (and ``z``) whatever the image.

        The per-bin prior logits (buffers ``prior_x``, ``prior_y``, ``prior_z``, added to
        the heatmaps before the soft-argmax) become :func:`bias_for_mean` of the mean
        position, and the 1×1 output convolutions get small weights (normal, ``weight_std``):
        the image-dependent part is a residual that training grows from zero, so the first
        step already predicts a hand-shaped mesh instead of every vertex at the crop centre.

        Args:
            uv: (V, 2) float, crop pixels (e.g. the training set's mean projected mesh).
            z: optional (V,) float, metres relative to the root (needs ``with_z``).
            weight_std: std of the output convolutions' weights after the reset.
            sigma: width of the initial heatmaps, bins.
        """
        v = self.num_vertices
        if self.prior_x is None:
            raise ValueError("init_mean needs the heatmap size: build the regressor with heatmap_size=(h, w)")
        uv = torch.as_tensor(uv, dtype=torch.float64)
        if tuple(uv.shape) != (v, 2):
            raise ValueError(f"uv must be ({v}, 2), got {tuple(uv.shape)}")
        for conv, buf, coord in ((self.conv_x, self.prior_x, uv[:, 0]), (self.conv_y, self.prior_y, uv[:, 1])):
            nn.init.normal_(conv.weight, std=weight_std)
            conv.bias.zero_()
            buf.copy_(bias_for_mean(coord / self.stride, buf.shape[1], sigma).to(buf))
        if z is not None:
            if not self.with_z:
                raise ValueError("z given but this regressor has no z head")
            z = torch.as_tensor(z, dtype=torch.float64)
            if tuple(z.shape) != (v,):
                raise ValueError(f"z must be ({v},), got {tuple(z.shape)}")
            nn.init.normal_(self.conv_z_2.weight, std=weight_std)
            self.conv_z_2.bias.zero_()
            bins = (z / self.depth_range + 0.5) * self.depth_bins
            self.prior_z.copy_(bias_for_mean(bins, self.depth_bins, sigma).to(self.prior_z))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints from before the prior buffers existed: no prior (zeros), as they were trained
        for name in ("prior_x", "prior_y", "prior_z"):
            buf = getattr(self, name, None)
            if buf is not None and prefix + name not in state_dict:
                state_dict[prefix + name] = torch.zeros_like(buf)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, features: torch.Tensor, return_heatmaps: bool = False) -> dict[str, torch.Tensor]:
        if features.ndim != 4 or features.shape[1] != self.in_channels:
            raise ValueError(
                f"features must be (B, {self.in_channels}, h, w), got {tuple(features.shape)}"
            )
        feat_xy = self.deconv(features)  # (B, hidden, 8h, 8w)
        heatmap_x = self.conv_x(feat_xy.mean(dim=2))  # pool over rows -> (B, V, 8w)
        heatmap_y = self.conv_y(feat_xy.mean(dim=3))  # pool over columns -> (B, V, 8h)
        if self.prior_x is not None:
            if self.prior_x.shape[1] != heatmap_x.shape[2] or self.prior_y.shape[1] != heatmap_y.shape[2]:
                raise ValueError(f"features give {heatmap_y.shape[2]}x{heatmap_x.shape[2]} heatmaps, the prior "
                                 f"is {self.prior_y.shape[1]}x{self.prior_x.shape[1]}")
            heatmap_x = heatmap_x + self.prior_x.to(heatmap_x.dtype)
            heatmap_y = heatmap_y + self.prior_y.to(heatmap_y.dtype)
        u = soft_argmax_1d(heatmap_x) * self.stride  # (B, V) pixels
        v = soft_argmax_1d(heatmap_y) * self.stride  # (B, V) pixels
        out = {"uv": torch.stack((u, v), dim=-1)}  # (B, V, 2)
        if return_heatmaps:
            out["heatmap_x"] = heatmap_x
            out["heatmap_y"] = heatmap_y
        if self.with_z:
            b = features.shape[0]
            feat_z = features.mean(dim=(2, 3))[:, :, None]  # (B, C, 1)
            feat_z = self.conv_z_1(feat_z).view(b, self.hidden_channels, self.depth_bins)  # (B, hidden, D)
            heatmap_z = self.conv_z_2(feat_z) + self.prior_z.to(feat_z.dtype)  # (B, V, D)
            z_bins = soft_argmax_1d(heatmap_z)  # (B, V) in [0, D]
            out["z"] = (z_bins / self.depth_bins - 0.5) * self.depth_range  # (B, V) metres, root-relative
            if return_heatmaps:
                out["heatmap_z"] = heatmap_z
        return out
