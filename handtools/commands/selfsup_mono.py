"""``handtools selfsup-mono``: S2HAND, hand meshes learned from single images and detected 2D keypoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from handtools.commands._training import TrainOptions, checkpoint_target, parse_weights, run_training, train_config
from handtools.console import log
from handtools.core.methods.s2hand.config import BRANCH_2D_LOSSES, LOSS_NAMES, PAPER, PRESETS, stage_losses
from handtools.errors import InputError
from handtools.io.pipes import read_input_paths
from handtools.options import Device, Inputs, Mano, Overwrite, resolve_device


def selfsup_mono(
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint file to write (.pt).")],
    inputs: Inputs = None,
    preset: Annotated[str, typer.Option("--preset", help="paper (EfficientNet-b0, 224 px, 90 epochs) or cpu "
                                        "(ResNet-18, 64 px, 20 epochs); options given override it.")] = "paper",
    encoder: Annotated[Optional[str], typer.Option("--encoder", help="efficientnet_b0 (paper), efficientnet_b3 "
                                                   "(official code), resnet18/34/50.")] = None,
    backbone_weights: Annotated[Optional[Path], typer.Option(
        "--backbone-weights", help="torchvision state dict of the encoder (.pth), e.g. ImageNet.")] = None,
    init: Annotated[Optional[Path], typer.Option(
        "--init", help="pretrain checkpoint whose ResNet encoder starts the network (same --encoder; 'default': the "
        "shipped prior, --encoder resnet10), or a selfsup-mono checkpoint to fine-tune whole (e.g. on your footage; "
        "its encoder and 2D branch unless given); default: from scratch.")] = None,
    pool: Annotated[str, typer.Option("--pool", help="max (supp. §2) or avg (official code).")] = PAPER.pool,
    texture: Annotated[str, typer.Option("--texture", help="vertex (paper) or face (official code).")] = PAPER.texture,
    stacks: Annotated[Optional[int], typer.Option(
        "--stacks", min=0, help="Hourglasses of the 2D branch (paper: 2); 0: no 2D branch, no kp2d / con [preset].")] = None,
    hourglass_features: Annotated[Optional[int], typer.Option(
        "--hourglass-features", min=2, help="Channels inside the hourglasses (paper preset 256, cpu 32).")] = None,
    loss_off: Annotated[Optional[list[str]], typer.Option(
        "--no", metavar="LOSS", help=f"Switch a loss off (repeatable): {', '.join(LOSS_NAMES)}.")] = None,
    weight: Annotated[Optional[list[str]], typer.Option(
        "--weight", metavar="NAME=VALUE", help=f"Override a paper weight factor (repeatable): {', '.join(PAPER.weights)}.")] = None,
    con_sum: Annotated[str, typer.Option("--con-sum", help="Per-sample weight of eq. 6: sum (paper) or mean (code).")] = PAPER.con_sum,
    loc_form: Annotated[str, typer.Option("--loc-form", help="E_loc: paper (SmoothL1) or code (Huber 5 px, con^2).")] = PAPER.loc_form,
    shape_form: Annotated[str, typer.Option("--shape-form", help="E_beta: norm (paper) or mse (code).")] = PAPER.shape_form,
    synth_keypoints: Annotated[bool, typer.Option(
        "--synth-keypoints", help="Accept synth --kp-noise keypoints (a detector stand-in) instead of detect's.")] = False,
    mirror_left: Annotated[bool, typer.Option(
        "--mirror-left/--no-mirror-left", help="Mirror hands detect flags as left to right hands (predict mirrors back).")] = True,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Training epochs [preset].")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Images per step [preset].")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate [preset].")] = None,
    milestones: Annotated[Optional[str], typer.Option("--milestones", metavar="E1,E2", help="lr decay epochs [preset].")] = None,
    gamma: Annotated[Optional[float], typer.Option("--gamma", help="lr decay factor [preset].")] = None,
    finetune_epochs: Annotated[Optional[int], typer.Option(
        "--finetune-epochs", min=0, help="Stage 2 (joint fine-tuning with E_con) epochs; 0: none [preset].")] = None,
    finetune_lr: Annotated[Optional[float], typer.Option("--finetune-lr", help="Stage 2 learning rate [preset].")] = None,
    finetune_milestones: Annotated[Optional[str], typer.Option(
        "--finetune-milestones", metavar="E1,E2", help="Stage 2 lr decay epochs [preset].")] = None,
    finetune_gamma: Annotated[Optional[float], typer.Option("--finetune-gamma", help="Stage 2 lr decay factor [preset].")] = None,
    seed: TrainOptions.Seed = 0,
    workers: TrainOptions.Workers = 0,
    max_steps: TrainOptions.MaxSteps = None,
    checkpoint_every: TrainOptions.CheckpointEvery = 0,
    amp: TrainOptions.Amp = True,
    resume: TrainOptions.Resume = False,
    tensorboard: TrainOptions.TensorBoard = None,
    tensorboard_images: TrainOptions.TensorBoardImages = None,
    renderer: Annotated[str, typer.Option("--renderer", help="auto, nvdiffrast or torch.")] = "auto",
    device: Device = "auto",
    mano: Mano = None,
    overwrite: Overwrite = False,
) -> None:
    """Train S2HAND (Chen et al., CVPR 2021) from single-view crops and their detected keypoints.

    Inputs are 1-view crops shards whose keypoints2d come from `handtools detect`; only
    images, K, keypoints2d (+ confidence) and the detector's hand/is_left are read, no
    3D, mask or ground-truth 2D label. Losses (eqs. 3-11, supp. eqs. 1-4): loc, ori, pixel,
    ssim, shape, texture, scale, angle, and with the 2D branch (a stacked hourglass) kp2d
    (E_2d) and con (E_con); --no LOSS and --stacks 0 rerun Table 4's ablation, --weight
    changes a factor of supplementary §2 (3d, 2d, con, geo, photo, regu, ori, ssim,
    texture, scale, angle). Schedule (§4.2): stage 1 trains the 3D branch (E_3d) and the
    2D branch (E_2d) separately, stage 2 fine-tunes both with E_con added
    (--finetune-*); --out holds the latest stage's checkpoint.

    \b
    $ handtools import images photos/ | handtools detect | handtools crop --size 224 \\
        | handtools selfsup-mono --out mono.pt
    $ handtools predict --checkpoint mono.pt --out preds/ crops/*.h5 | handtools evaluate
    """
    import torch

    from handtools.core.learning.checkpoints import load_checkpoint
    from handtools.core.learning.trainer import Trainer
    from handtools.core.methods.s2hand import S2HandLoss, S2HandNet, mano_hand
    from handtools.core.render import Renderer
    from handtools.io.mono_data import MonoKeypointDataset
    from handtools.io.pipes import emit_path

    if preset not in PRESETS:
        raise typer.BadParameter(f"expected one of {', '.join(PRESETS)}, got {preset!r}", param_hint="--preset")
    cfg0 = PRESETS[preset]
    init_ckpt = load_checkpoint(init) if init is not None else None
    if init_ckpt is not None and init_ckpt["meta"].get("kind") == "mono":  # fine-tuning: its architecture by default
        theirs = init_ckpt["meta"]["net"]
        encoder = encoder or theirs["encoder"]
        stacks = theirs.get("stacks", 0) if stacks is None else stacks
        hourglass_features = hourglass_features or theirs.get("hourglass_features")
    off = list(loss_off or [])
    bad = [n for n in off if n not in LOSS_NAMES]
    if bad:
        raise typer.BadParameter(f"unknown loss {bad[0]!r} (known: {', '.join(LOSS_NAMES)})", param_hint="--no")
    stacks = cfg0.stacks if stacks is None else stacks
    losses = [n for n in cfg0.losses if n not in off]
    if stacks and not set(losses) & set(BRANCH_2D_LOSSES):
        raise typer.BadParameter("the 2D branch trains only through kp2d or con; keep one on, or --stacks 0",
                                 param_hint="--no")
    enabled1, enabled2 = (list(stage_losses(losses, stacks, st)) for st in (1, 2))
    if not enabled1:
        raise typer.BadParameter("every loss of stage 1 is switched off", param_hint="--no")
    weights = parse_weights(weight or [], cfg0.weights)
    for name, value, allowed in (("--pool", pool, ("max", "avg")), ("--texture", texture, ("vertex", "face")),
                                 ("--con-sum", con_sum, ("sum", "mean")), ("--loc-form", loc_form, ("paper", "code")),
                                 ("--shape-form", shape_form, ("norm", "mse"))):
        if value not in allowed:
            raise typer.BadParameter(f"expected {' or '.join(allowed)}, got {value!r}", param_hint=name)
    start = checkpoint_target(out, resume=resume, overwrite=overwrite)
    paths = read_input_paths(inputs)
    data = MonoKeypointDataset(paths, allow_synth_noise=synth_keypoints, mirror_left=mirror_left)
    if data.image_size[0] != data.image_size[1]:
        raise InputError(f"crops are {data.image_size[1]}x{data.image_size[0]}; S2HAND takes square crops (handtools crop --size)")
    encoder = encoder or cfg0.encoder
    dev = resolve_device(device)
    hand = mano_hand(mano, device=dev)
    cfg1 = train_config(epochs or cfg0.epochs, batch_size or cfg0.batch_size, lr or cfg0.lr,
                        ",".join(map(str, cfg0.milestones)) if milestones is None else milestones,
                        cfg0.gamma if gamma is None else gamma, seed, workers, max_steps, checkpoint_every, amp)
    n2 = cfg0.finetune_epochs if finetune_epochs is None else finetune_epochs
    cfg2 = None
    if n2:
        cfg2 = train_config(n2, batch_size or cfg0.batch_size, finetune_lr or cfg0.finetune_lr,
                            ",".join(map(str, cfg0.finetune_milestones)) if finetune_milestones is None else finetune_milestones,
                            cfg0.finetune_gamma if finetune_gamma is None else finetune_gamma, seed, workers, max_steps,
                            checkpoint_every, amp)
    torch.manual_seed(seed)
    try:
        net = S2HandNet(encoder, data.image_size[0], pool=pool, texture=texture, stacks=stacks,
                        hourglass_features=hourglass_features or cfg0.hourglass_features)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--encoder")
    if backbone_weights is not None:
        _load_backbone(net, backbone_weights)
    if init_ckpt is not None:
        _load_init(net, init_ckpt, init)
    rend = Renderer(renderer, device=dev)
    common = {"weights": weights, "con_sum": con_sum, "loc_form": loc_form, "shape_form": shape_form}
    loss1 = S2HandLoss(hand, rend, enabled=enabled1, **common)
    meta = {
        "kind": "mono", "net": net.config, "hand_model": hand.identity, "init": str(init) if init else None,
        "losses": enabled1, "weights": loss1.factors, "con_sum": con_sum, "loc_form": loc_form,
        "shape_form": shape_form, "mirror_left": mirror_left, "keypoints": sorted(set(data.sources)),
        "train_shards": [str(p) for p in paths], "stage": 1,
    }
    size = f"{data.image_size[1]}x{data.image_size[0]}"
    what = (f"{len(data)} crops ({size}, keypoints from {', '.join(sorted(set(data.sources)))}), {encoder}"
            f"{f', 2D branch: {stacks}-stack hourglass' if stacks else ''}")
    saved_stage = 1
    if start == "resume":
        saved_stage = int(load_checkpoint(out)["meta"].get("stage", 1))
        if saved_stage == 2 and cfg2 is None:
            raise InputError(f"{out}: its stage 2 (fine-tuning) is under way; --finetune-epochs 0 cannot resume it")
    trainer1 = None
    if saved_stage == 1:
        trainer1 = Trainer(net, loss1, data, cfg1, out, dev, meta=meta)
        run_training("selfsup-mono" + (" stage 1" if cfg2 else ""), trainer1, out, start,
                     f"{what}, losses {', '.join(enabled1)}", emit=False, tensorboard=tensorboard, hand=hand,
                     overwrite=overwrite, tensorboard_images=tensorboard_images)
        if cfg2 is None or trainer1.epoch < cfg1.epochs:  # no stage 2, or stage 1 stopped early (--max-steps)
            if trainer1.epoch < cfg1.epochs and cfg2 is not None:
                log.info(f"selfsup-mono: stage 1 stopped at epoch {trainer1.epoch} of {cfg1.epochs}; --resume continues it")
            emit_path(out)
            return
    loss2 = S2HandLoss(hand, rend, enabled=enabled2, **common)
    trainer2 = Trainer(net, loss2, data, cfg2, out, dev, meta=dict(meta, losses=enabled2, stage=2))
    if trainer1 is not None:  # continue the step count and the log of stage 1
        trainer2.global_step = trainer2._saved_step = trainer1.global_step
        trainer2.history = [dict(r, stage=1) for r in trainer1.history]
    run_training("selfsup-mono stage 2", trainer2, out, "resume" if saved_stage == 2 else "new",
                 f"fine-tuning, losses {', '.join(enabled2)}",
                 tensorboard=None if tensorboard is None else tensorboard / "stage2", hand=hand, overwrite=overwrite,
                 tensorboard_images=tensorboard_images)


def _load_backbone(net, path: Path) -> None:
    from handtools.core.learning.nets.efficientnet import EfficientNetEncoder, load_efficientnet_weights
    from handtools.core.learning.nets.resnet import load_backbone_weights

    if isinstance(net.encoder, EfficientNetEncoder):
        load_efficientnet_weights(net.encoder, path)
    else:
        load_backbone_weights(net.encoder.trunk, path)
    log.info(f"selfsup-mono: encoder initialised from {path}")


def _load_init(net, ckpt: dict, path: Path) -> None:
    kind = ckpt["meta"].get("kind")
    if kind == "mono":
        _load_mono_init(net, ckpt, path)
        return
    if kind != "prior":
        raise InputError(f"{path}: --init needs a pretrain or selfsup-mono checkpoint, got kind {kind!r}")
    arch = ckpt["meta"]["net"].get("encoder")
    if arch != net.config["encoder"]:
        raise InputError(f"{path}: the prior's encoder is {arch}, this network's {net.config['encoder']} (--encoder {arch})")
    state = {k[len("encoder."):]: v for k, v in ckpt["model"].items() if k.startswith("encoder.")}
    net.encoder.trunk.load_state_dict(state, strict=True)
    log.info(f"selfsup-mono: encoder initialised from the prior {path}")


#: What fixes each part of the network's configuration, for --init mismatch messages.
_CONFIG_FIX = {"encoder": "--encoder", "image_size": "handtools crop --size", "pool": "--pool", "texture": "--texture"}


def _load_mono_init(net, ckpt: dict, path: Path) -> None:
    """Every weight of a ``selfsup-mono`` checkpoint (fine-tuning). The 2D branch is taken
    when both networks have the same one; a network without one drops it, and a new one
    starts fresh (said in the log)."""
    theirs, ours = dict(ckpt["meta"]["net"]), dict(net.config)
    for key in _CONFIG_FIX:
        if theirs.get(key) != ours.get(key):
            raise InputError(f"{path}: its {key} is {theirs.get(key)}, this network's {ours.get(key)} "
                             f"({_CONFIG_FIX[key]} {theirs.get(key)})")
    same_2d = (theirs.get("stacks", 0), theirs.get("hourglass_features")) == (ours.get("stacks", 0), ours.get("hourglass_features"))
    state = {k: v for k, v in ckpt["model"].items() if same_2d or not k.startswith("branch2d.")}
    if same_2d:
        net.load_state_dict(state, strict=True)
        log.info(f"selfsup-mono: every weight initialised from the selfsup-mono checkpoint {path} (fine-tuning)")
        return
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("branch2d.") for k in missing):  # only the 2D branch may differ
        raise InputError(f"{path}: its weights do not fit this network")
    fresh = "a fresh 2D branch" if ours.get("stacks") else "no 2D branch"
    log.info(f"selfsup-mono: 3D branch initialised from the selfsup-mono checkpoint {path} (fine-tuning); "
             f"{fresh} (its 2D branch: {theirs.get('stacks', 0)} stacks of {theirs.get('hourglass_features')})")
