"""``handtools selfsup-stereo``: self-supervised transfer from binocular images (Chen et al., ICCV 2021)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from handtools.commands._training import (
    TrainOptions, checkpoint_target, input_fingerprints, parse_weights, run_training, train_config,
)
from handtools.console import log
from handtools.core.methods.binocular.config import DEPTH_LOSS, LOSS_NAMES, PAPER
from handtools.errors import InputError
from handtools.io.pipes import read_input_paths
from handtools.options import Device, Inputs, Mano, Overwrite, resolve_device

# Long only by its signature (the option table, 33 lines) and docstring (--help); the body is about 50 lines.
def selfsup_stereo(
    init: Annotated[Path, typer.Option("--init", help="pretrain checkpoint the two branches start from.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint file to write (.pt).")],
    inputs: Inputs = None,
    z_head: Annotated[
        bool, typer.Option("--z-head", help="Monocular variant: keep a regressed z per vertex (one image at test time).")
    ] = False,
    photo: Annotated[bool, typer.Option("--photo/--no-photo", help="Photo-consistency loss (eqs. 2-3).")] = True,
    edge: Annotated[bool, typer.Option("--edge/--no-edge", help="Edge loss against pseudo labels (eq. 5).")] = True,
    laplacian: Annotated[bool, typer.Option("--laplacian/--no-laplacian", help="Laplacian loss (eq. 6).")] = True,
    mask: Annotated[bool, typer.Option("--mask/--no-mask", help="Mask loss (eq. 7).")] = True,
    chamfer: Annotated[bool, typer.Option("--chamfer/--no-chamfer", help="Chamfer loss (eq. 8).")] = True,
    normal: Annotated[bool, typer.Option("--normal/--no-normal", help="Normal consistency loss (eq. 9).")] = True,
    depth: Annotated[
        bool, typer.Option("--depth/--no-depth", help="With --z-head: z head vs disparity depth (our addition).")
    ] = True,
    weight: Annotated[
        Optional[list[str]], typer.Option("--weight", metavar="NAME=VALUE", help="Override a loss weight (repeatable).")
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="SSIM weight in the photo loss.")] = PAPER.alpha,
    epochs: TrainOptions.Epochs = PAPER.epochs,
    batch_size: TrainOptions.BatchSize = PAPER.batch_size,
    lr: TrainOptions.Lr = PAPER.lr,
    milestones: TrainOptions.Milestones = ",".join(map(str, PAPER.milestones)),
    gamma: TrainOptions.Gamma = PAPER.gamma,
    seed: TrainOptions.Seed = 0,
    workers: TrainOptions.Workers = 0,
    max_steps: TrainOptions.MaxSteps = None,
    checkpoint_every: TrainOptions.CheckpointEvery = 0,
    amp: TrainOptions.Amp = True,
    resume: TrainOptions.Resume = False,
    allow_change: TrainOptions.AllowChange = False,
    tensorboard: TrainOptions.TensorBoard = None,
    tensorboard_images: TrainOptions.TensorBoardImages = None,
    masks: Annotated[
        str, typer.Option("--masks", metavar="auto|shard|skin",
                          help="Hand masks: the shard's from handtools mask (auto; else computed as mask --method skin "
                               "would), the shard's whatever made them, or always computed.")
    ] = "auto",
    gt_keypoints: Annotated[
        bool, typer.Option("--gt-keypoints", help="Allow masks bounded by ground-truth keypoints2d (synth's or a "
                                                   "dataset's) when no detect keypoints exist; named in the log.")
    ] = False,
    renderer: Annotated[str, typer.Option("--renderer", help="auto, nvdiffrast or torch.")] = "auto",
    device: Device = "auto",
    mano: Mano = None,
    overwrite: Overwrite = False,
) -> None:
    """Adapt a hand prior to a new domain from unlabelled rectified stereo crops.

    Inputs are 2-view crops shards (handtools detect | handtools crop [| handtools mask]).
    Only images, K, baseline and hand masks are read — no 2D, 3D or depth labels. Without
    masks from handtools mask they are computed as mask --method skin would (skin colour
    bounded by detect's keypoints); ground-truth keypoints are refused unless
    --gt-keypoints, and any ground truth used (e.g. crop --center gt) is named in the log.
    Paper defaults (supplementary §3): batch 4, Adam lr 1e-5, 13 epochs, decay x0.1
    after epochs 8 and 10; loss weights photo 100, edge 1, Laplacian 10, mask 0.1,
    Chamfer 0.001, normal 0.001 (eq. 10). --no-<loss> reruns the paper's ablation.

    \b
    $ handtools synth --views 2 --domain indoor -n 500 --out indoor/ | handtools detect --out det/ \\
        | handtools crop --out crops/ | handtools selfsup-stereo --init prior.pt --out adapted.pt
    """
    import torch

    from handtools.core.hand.model import HandModel
    from handtools.core.render import Renderer
    from handtools.core.learning.checkpoints import load_checkpoint
    from handtools.core.learning.trainer import Trainer
    from handtools.core.methods.binocular import StereoSelfSupLoss, pseudo_meshes, pseudo_source, stereo_net_from_prior
    from handtools.io.training_data import MASK_MODES, StereoCropDataset

    weights = parse_weights(weight or [], PAPER.loss_weights)
    enabled = [n for n, on in zip(LOSS_NAMES, (photo, edge, laplacian, mask, chamfer, normal)) if on]
    if z_head and depth:
        enabled.append(DEPTH_LOSS)
    if not enabled:
        raise typer.BadParameter("every loss is switched off", param_hint="--no-*")
    start = checkpoint_target(out, resume=resume, overwrite=overwrite)
    init_ckpt = load_checkpoint(init, meta_keys=("kind", "net"))
    if init_ckpt["meta"].get("kind") != "prior":
        raise InputError(f"{init}: --init needs a pretrain checkpoint, got kind {init_ckpt['meta'].get('kind')!r}")
    paths = read_input_paths(inputs)
    if masks not in MASK_MODES:
        raise typer.BadParameter(f"expected one of {', '.join(MASK_MODES)}, got {masks!r}", param_hint="--masks")
    try:
        data = StereoCropDataset(paths, masks=masks, gt_keypoints=gt_keypoints)
    except ValueError as exc:
        raise InputError(str(exc).replace("allow ground-truth keypoints explicitly", "pass --gt-keypoints")) from None
    for note in data.notes:
        log.info(f"selfsup-stereo: masks: {note}")
    for line in data.ground_truth:
        log.warning(f"selfsup-stereo: GROUND TRUTH used: {line}")
    if not data.ground_truth:
        log.info("selfsup-stereo: ground truth used: none (images, K, baseline and image-derived masks only)")
    want = tuple(init_ckpt["meta"]["net"]["image_size"])
    if data.image_size != want:
        raise InputError(
            f"crops are {data.image_size[1]}x{data.image_size[0]}, the --init model takes {want[1]}x{want[0]}"
            " (handtools crop --size)"
        )
    dev = resolve_device(device)
    hand = HandModel.from_path(mano)
    if hand.identity != init_ckpt["meta"].get("hand_model"):
        log.warning(f"selfsup-stereo: --init was trained with {init_ckpt['meta'].get('hand_model')}, using {hand.identity}")
    cfg = train_config(epochs, batch_size, lr, milestones, gamma, seed, workers, max_steps, checkpoint_every, amp)
    torch.manual_seed(seed)
    net = stereo_net_from_prior(init_ckpt, hand.joint_regressor, z_head)
    pseudo = None
    if "edge" in enabled:
        if not init_ckpt["meta"]["net"].get("with_z", True):
            raise InputError(f"{init}: this prior has no z head (pretrain --no-z), so the edge loss's pseudo meshes "
                             "would be per-vertex disparity meshes as noisy as its u; pretrain with --z, or --no-edge")
        log.info(f"selfsup-stereo: pseudo labels ({pseudo_source(init_ckpt)}) from {init} on {len(data)} stereo pairs")
        pseudo = pseudo_meshes(init_ckpt, hand.joint_regressor, data, dev)
    loss = StereoSelfSupLoss(hand.faces, hand.joint_regressor, Renderer(renderer, device=dev), pseudo,
                             weights=weights, enabled=enabled, alpha=alpha)
    meta = {
        "kind": "stereo",
        "net": net.config,
        "hand_model": hand.identity,
        "init": str(init),
        "losses": enabled,
        "loss_weights": loss.w,
        "alpha": alpha,
        "mesh_unit": loss.mesh_unit,
        "edge_reduction": loss.edge_reduction,
        "mask_reduction": loss.mask_reduction,
        "depth_unit": loss.depth_unit,
        "train_shards": [str(p) for p in paths],
        "inputs": input_fingerprints(paths),
        "masks": data.notes,
        "ground_truth_used": data.ground_truth,
    }
    trainer = Trainer(net, loss, data, cfg, out, dev, meta=meta)
    size = f"{data.image_size[1]}x{data.image_size[0]}"
    run_training("selfsup-stereo", trainer, out, start,
                 f"{len(data)} pairs ({size}), losses {', '.join(enabled)}{' + z head' if z_head else ''}", allow_change,
                 tensorboard=tensorboard, hand=hand, overwrite=overwrite, images_per_sample=2,
                 tensorboard_images=tensorboard_images)
