"""``handtools pretrain``: supervised hand-prior learning (ResNet + image-to-lixel mesh regressor)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from handtools.commands._training import (
    TrainOptions, checkpoint_target, input_fingerprints, run_training, train_config,
)
from handtools.console import log
from handtools.core.methods.prior.config import PAPER
from handtools.errors import InputError
from handtools.io.pipes import read_input_paths
from handtools.options import Device, Inputs, Mano, Overwrite, resolve_device


def pretrain(
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint file to write (.pt).")],
    inputs: Inputs = None,
    encoder: Annotated[
        str, typer.Option("--encoder", help="resnet50 (paper), resnet18/34 for CPU work, resnet10 (the shipped "
                          "prior), resnet101/152.")
    ] = PAPER.encoder,
    backbone_weights: Annotated[
        Optional[Path], typer.Option("--backbone-weights", help="torchvision ResNet state dict (.pth), e.g. ImageNet.")
    ] = None,
    with_z: Annotated[bool, typer.Option("--z/--no-z", help="Regress root-relative depth (the full prior).")] = PAPER.with_z,
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
    device: Device = "auto",
    mano: Mano = None,
    overwrite: Overwrite = False,
) -> None:
    """Learn a hand prior from labelled crops (images + ground-truth meshes).

    Paper defaults (binocular paper, supplementary §1): Adam, lr 1e-5, 25 epochs,
    decay x0.1 after epochs 17 and 21, batch 32. Every view of every sample is a
    training image. Checkpoints are written atomically each epoch and on Ctrl-C or
    SIGTERM; --resume continues exactly, or refuses a run with other settings or
    inputs (--allow-change). --overwrite keeps the old checkpoint until the first new one.

    \b
    $ handtools synth --domain studio -n 2000 --out studio/ | handtools crop --center gt \\
        | handtools pretrain --encoder resnet18 --out prior.pt
    $ torchrun --nproc_per_node 4 -m handtools pretrain crops/*.h5 --out prior.pt
    """
    import torch

    from handtools.core.hand.model import HandModel
    from handtools.core.learning.nets.prior import HandPriorNet
    from handtools.core.learning.nets.resnet import load_backbone_weights
    from handtools.core.learning.trainer import Trainer
    from handtools.core.methods.prior.loss import PriorLoss
    from handtools.io.training_data import CropViewDataset

    start = checkpoint_target(out, resume=resume, overwrite=overwrite)
    paths = read_input_paths(inputs)
    data = CropViewDataset(paths, ground_truth=True)
    h, w = data.image_size
    if h % 32 or w % 32:
        raise InputError(f"crops are {w}x{h}; the network needs sizes that are multiples of 32 (handtools crop --size 256)")
    dev = resolve_device(device)
    hand = HandModel.from_path(mano)
    cfg = train_config(epochs, batch_size, lr, milestones, gamma, seed, workers, max_steps, checkpoint_every, amp)
    torch.manual_seed(seed)
    net = HandPriorNet(encoder, (h, w), with_z=with_z, J_regressor=hand.joint_regressor)
    if start == "new":  # start from the training set's mean hand (docs/prior.md), not a collapsed mesh
        net.init_mean(*_mean_hand(data))
        log.info("pretrain: heads start at the training set's mean hand (ground-truth meshes of the labelled set)")
    if backbone_weights is not None:
        load_backbone_weights(net, backbone_weights)
        log.info(f"pretrain: encoder initialised from {backbone_weights}")
    loss = PriorLoss(hand.faces, hand.joint_regressor, (h, w), net.config["depth_range"])
    meta = {
        "kind": "prior",
        "net": net.config,
        "hand_model": hand.identity,
        "loss_weights": loss.w,
        "train_shards": [str(p) for p in paths],
        "inputs": input_fingerprints(paths),
    }
    trainer = Trainer(net, loss, data, cfg, out, dev, meta=meta)
    run_training("pretrain", trainer, out, start,
                 f"{len(data)} training images ({h}x{w}) from {len(paths)} shard(s), {encoder}", allow_change,
                 tensorboard=tensorboard, hand=hand, overwrite=overwrite, tensorboard_images=tensorboard_images)


def _mean_hand(data):
    """The labelled set's mean projected mesh (uv (778, 2) crop px, z (778,) m root-relative)."""
    import numpy as np
    import torch

    from handtools.core.methods.prior.loss import mean_uvz
    from handtools.io.shards import ShardReader

    verts, joints, Ks = [], [], []
    for p in data.base.paths:
        with ShardReader(p) as r:
            v3, j3, K = r.read("verts3d"), r.read("joints3d"), r.read("K")  # (N, 778, 3), (N, 21, 3), (N, V, 3, 3)
            T = r.read("T_view") if "T_view" in r else np.broadcast_to(np.eye(4, dtype=np.float32), K.shape[:2] + (4, 4))
        for v in data.views:
            R, t = T[:, v, :3, :3], T[:, v, None, :3, 3]
            verts.append(np.einsum("nij,nvj->nvi", R, v3) + t)
            joints.append(np.einsum("nij,nvj->nvi", R, j3) + t)
            Ks.append(K[:, v])
    cat = lambda xs: torch.from_numpy(np.concatenate(xs).astype(np.float32))  # noqa: E731
    return mean_uvz(cat(verts), cat(joints), cat(Ks))
