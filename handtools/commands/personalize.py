"""``handtools personalize``: a personal hand model (DeepHandMesh) from multi-view captures."""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from handtools.console import log
from handtools.errors import InputError, OutputExistsError
from handtools.io.files import check_output_file, write_atomic
from handtools.io.pipes import emit_path, read_input_paths
from handtools.options import Device, Inputs, Mano, Overwrite, resolve_device


def _read_capture(paths, use_depth: bool, joints_from: str, max_frames: Optional[int], use_images: bool = False):
    """Frames of all shards: joints (F, 21, 3), valid (F, 21), depth (F, C, H, W) or None, K, T_view,
    and with ``use_images`` the images (F, C, H, W, 3) as a sixth item."""
    import torch

    from handtools.core.geometry.triangulation import triangulate_dlt
    from handtools.io.shards import ShardReader

    joints, valid, depth, ks, ts, images = [], [], [], [], [], []
    views = None
    for p in paths:
        need = ["K", "T_view"] + (["depth"] if use_depth else []) + (["images"] if use_images else [])
        with ShardReader(p, require=need) as r:
            if r.num_views < 2:
                raise InputError(f"{p}: {r.num_views} view(s); personalize needs multi-view shards (N >= 2 views "
                                 "with K, T_view and depth)")
            if views is not None and r.num_views != views:
                raise InputError(f"{p}: {r.num_views} views, earlier shards have {views}")
            views = r.num_views
            K, T = r.read("K"), r.read("T_view")
            if joints_from == "joints3d" or (joints_from == "auto" and "joints3d" in r):
                if "joints3d" not in r:
                    raise InputError(f"{p}: no joints3d (use --joints triangulate with keypoints2d)")
                j = r.read("joints3d").astype(np.float64)
                ok = np.isfinite(j).all(-1)
            else:
                if "keypoints2d" not in r:
                    raise InputError(f"{p}: neither joints3d nor keypoints2d; run handtools detect first")
                pts, ok_t = triangulate_dlt(torch.as_tensor(r.read("keypoints2d"), dtype=torch.float64),
                                            torch.as_tensor(K, dtype=torch.float64),
                                            torch.as_tensor(T, dtype=torch.float64))
                j, ok = pts.numpy(), ok_t.numpy()
            joints.append(j)
            valid.append(ok)
            ks.append(K)
            ts.append(T)
            if use_depth:
                d = r.read("depth")
                if not (d > 0).any(axis=(2, 3)).all():
                    n_missing = int((~(d > 0).any(axis=(2, 3))).sum())
                    raise InputError(f"{p}: {n_missing} view(s) hold no depth (all zero); give depth for every "
                                     "view or use --no-depth")
                depth.append(d)
            if use_images:
                images.append(r.read("images"))
    cat = lambda xs: np.concatenate(xs)[:max_frames]  # noqa: E731
    joints_all, valid_all = cat(joints), cat(valid)
    if (valid_all.sum(1) < 5).any():
        raise InputError("some frames have fewer than 5 known joints (triangulation needs >= 2 confident views)")
    got = joints_all, valid_all, (cat(depth) if use_depth else None), cat(ks), cat(ts)
    return (*got, cat(images)) if use_images else got


def personalize(
    out: Annotated[Path, typer.Option("--out", "-o", help="Personal hand model to write (.npz, MANO format); "
                                      "the checkpoint goes next to it (.pt).")],
    inputs: Inputs = None,
    fit_poses: Annotated[bool, typer.Option(
        "--fit-poses/--encoder",
        help="Per-frame pose variables (CPU, minutes) or the paper's image encoder trained with the decoder "
             "(§4; GPU-scale).")] = True,
    encoder_arch: Annotated[Optional[str], typer.Option("--encoder-arch", help="--encoder's ResNet: resnet50 "
                                                        "(paper), resnet18/34/101/152 [default: preset's].")] = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", min=16, help="--encoder's input crop side, "
                                                      "px (paper 256) [default: preset's].")] = None,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=0, help="--encoder: also write the "
                                                  ".pt every N steps (0: at the end only).")] = 0,
    preset: Annotated[str, typer.Option("--preset", help="cpu (default for --fit-poses), paper or code "
                                        "(the official code's choices); see docs/personalize.md.")] = "cpu",
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Optimiser steps [default: preset's].")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate of the model [default: preset's].")] = None,
    depth_size: Annotated[Optional[int], typer.Option("--depth-size", min=8, help="Depth crop side, px.")] = None,
    l2: Annotated[Optional[float], typer.Option("--l2", min=0.0, help="Weight of the correctives' L2 "
                                                "regulariser (supplementary §15) [default: preset's].")] = None,
    l2_pose: Annotated[Optional[float], typer.Option("--l2-pose", min=0.0, help="Weight of the L2 regulariser "
                                                     "on the pose corrective ΔM_θ alone [default: preset's].")] = None,
    lambda_lap: Annotated[Optional[float], typer.Option("--lambda-lap", min=0.0, help="Weight of L_lap "
                                                        "[default: preset's].")] = None,
    lap_target: Annotated[Optional[str], typer.Option("--lap-target", help="mesh (the posed mesh, paper) or "
                                                      "offsets (the identity corrective) [default: preset's].")] = None,
    use_depth: Annotated[bool, typer.Option("--depth/--no-depth", help="Use the L_depth term (needs depth).")] = True,
    penet: Annotated[bool, typer.Option("--penet/--no-penet", help="Use the penetration loss L_penet.")] = True,
    skeleton: Annotated[bool, typer.Option("--skeleton/--no-skeleton", help="Learn ΔS_β.")] = True,
    skin: Annotated[bool, typer.Option("--skin/--no-skin", help="Learn ΔW_β (supplementary §13).")] = False,
    baseline: Annotated[bool, typer.Option("--shape-only", help="Baseline: learn only MANO's 10 shape "
                                           "coefficients with the same losses (paper Table 1's MANO).")] = False,
    joints_from: Annotated[str, typer.Option("--joints", help="auto (joints3d if present, else triangulate "
                                             "keypoints2d), joints3d or triangulate.")] = "auto",
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Use the first N frames.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the identity code and the batches.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the .pt next to --out.")] = False,
    tensorboard: Annotated[Optional[Path], typer.Option(
        "--tensorboard", metavar="DIR", help="Also write TensorBoard events to DIR: per step each loss term, lr "
        "and frames/s.")] = None,
    device: Device = "auto",
    mano: Mano = None,
    overwrite: Overwrite = False,
) -> None:
    """Learn one person's hand model (DeepHandMesh, Moon et al. ECCV 2020) from multi-view shards.

    Inputs: N >= 2 views per frame with K, T_view, depth and joints3d (or keypoints2d,
    triangulated). Output: a MANO-format .npz (the personal template, re-solved joint
    regressor, pose correctives, weights; shape space and faces carried over) that every
    command takes as --mano, and a .pt checkpoint; the .npz path goes to stdout.

    \b
    $ handtools synth --mano subject.npz --views 6 --rig dome --image-size 128x128 -n 32 --out cap/ \\
        | handtools personalize --out me.npz
    $ handtools synth --mano me.npz -n 8 --out mine/
    """
    import torch

    from handtools.core.hand.mano_io import load_mano, model_identity, resolve_model_path
    from handtools.core.hand.open_hand import bundled_model_path
    from handtools.core.methods.deephandmesh.config import PRESETS
    from handtools.core.methods.deephandmesh.encoder import ImageFrames, PoseEncoder, encoder_poses, fit_encoder
    from handtools.core.methods.deephandmesh.export import export_mano
    from handtools.core.methods.deephandmesh.fit import FrameData, FramePoses, fit, palm_vertices
    from handtools.core.methods.deephandmesh.loss import DeepHandMeshLoss
    from handtools.core.methods.deephandmesh.model import PersonalHandModel
    from handtools.core.methods.deephandmesh.views import crop_depth_views, crop_image_views
    from handtools import runconfig
    from handtools.core.render import Renderer

    if preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}", param_hint="--preset")
    if joints_from not in ("auto", "joints3d", "triangulate"):
        raise typer.BadParameter("choose auto, joints3d or triangulate", param_hint="--joints")
    if out.suffix != ".npz":
        raise typer.BadParameter(f"{out}: the hand model is an .npz file", param_hint="--out")
    ckpt = out.with_suffix(".pt")
    if resume:
        if not ckpt.is_file():
            raise InputError(f"--resume: no checkpoint {ckpt}")
    else:
        check_output_file(out, overwrite, "--out")
        if ckpt.exists() and not overwrite:
            raise OutputExistsError(f"{ckpt}: exists (use --overwrite to replace, or --resume)")
    cfg = PRESETS[preset]
    cfg = replace(cfg, skeleton_corrective=skeleton and not baseline, identity_corrective=not baseline,
                  skin_corrective=skin and not baseline, **({"lr": lr} if lr is not None else {}),
                  **({"depth_size": depth_size} if depth_size is not None else {}),
                  **({"w_l2": l2} if l2 is not None else {}),
                  **({"w_l2_pose": l2_pose} if l2_pose is not None else {}),
                  **({"lambda_lap": lambda_lap} if lambda_lap is not None else {}),
                  **({"lap_target": lap_target} if lap_target is not None else {}),
                  **({"encoder": encoder_arch} if encoder_arch is not None else {}),
                  **({"image_size": image_size} if image_size is not None else {}))
    if baseline:  # only MANO's 10 shape coefficients change (the base model's pose correctives stay)
        cfg = replace(cfg, pose_corrective="none")
    paths = read_input_paths(inputs)
    resolved = resolve_model_path(mano)
    base_path = resolved if resolved is not None else bundled_model_path()
    try:
        base = load_mano(base_path)
    except ValueError as exc:
        raise InputError(f"--mano: {exc}") from None
    identity = model_identity(base_path, bundled=resolved is None)
    dev = resolve_device(device)
    torch.manual_seed(seed)

    capture = _read_capture(paths, use_depth, joints_from, max_frames, use_images=not fit_poses)
    joints, valid, depth, K, T = capture[:5]
    images = None
    if not fit_poses:
        images = torch.as_tensor(crop_image_views(capture[5], K, T, joints, cfg.image_size), device=dev)
    if depth is not None:
        depth, K = crop_depth_views(depth, K, T, joints, cfg.depth_size)
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)  # noqa: E731
    data = FrameData(f32(np.nan_to_num(joints)), torch.as_tensor(valid, device=dev),
                     None if depth is None else f32(depth), f32(K), f32(T))
    if steps or cfg.steps:
        n_steps = steps or cfg.steps
    elif fit_poses:
        n_steps = 1000
    else:  # the paper's epochs over every (frame, view) image
        n_steps = cfg.epochs * -(-len(data) * data.K.shape[1] // cfg.batch_size)
    model = PersonalHandModel(base, cfg, shape_space=baseline, seed=seed).to(dev)
    renderer = Renderer("auto", device=dev) if depth is not None else None
    loss = DeepHandMeshLoss(cfg, model.faces, palm_vertices(model.weights), renderer)
    mode = "fit-poses" if fit_poses else "encoder"
    encoder = PoseEncoder(model.pose_dim, cfg.encoder).to(dev) if not fit_poses else None
    poses, opt_state, start = None, None, 0
    if resume:
        state = torch.load(ckpt, map_location=dev, weights_only=True)
        if state.get("mode", "fit-poses") != mode:
            raise InputError(f"--resume: {ckpt} was trained with --{state.get('mode', 'fit-poses')}, not --{mode}")
        model.load_state_dict(state["model"])
        if encoder is not None:
            encoder.load_state_dict(state["encoder"])
        else:
            poses = FramePoses(model, data.joints)
            poses.load_state_dict(state["poses"])
        opt_state, start = state["optimizer"], int(state["step"])
    log.info(f"personalize: {len(data)} frames x {data.K.shape[1]} views from {len(paths)} shard(s), "
             f"{'shape-only baseline' if baseline else 'DeepHandMesh'} ({preset} preset, {mode}"
             f"{f', {cfg.encoder} on {cfg.image_size}² crops' if encoder is not None else ''}), "
             f"{n_steps} steps from {start} on {dev}")

    def save_checkpoint(step: int, opt, trained) -> None:
        """The state after ``step`` steps; ``trained``: the pose variables or the encoder."""
        ckbuf = io.BytesIO()
        torch.save({"kind": "deephandmesh", "mode": mode, "config": json.dumps(asdict(cfg)),
                    "model": model.state_dict(), ("poses" if encoder is None else "encoder"): trained.state_dict(),
                    "optimizer": opt.state_dict(), "step": step, "shape_only": baseline, "hand_model": identity,
                    "run_config": runconfig.current(inputs=paths),  # handtools info --config
                    **({"encoder_config": json.dumps(encoder.config)} if encoder is not None else {})}, ckbuf)
        write_atomic(ckpt, ckbuf.getvalue())

    board = _board(tensorboard, start, overwrite)
    clock = [time.perf_counter()]

    def on_step(step: int, terms: dict, opt=None) -> None:
        if step % 100 == 0 or step == n_steps - 1:
            log.info("step %d: %s", step, " ".join(f"{k} {v:.3f}" for k, v in terms.items()))
        if board is not None:
            now = time.perf_counter()
            seconds, clock[0] = now - clock[0], now
            values = {f"loss/{k}": v for k, v in terms.items()}
            values["lr"] = cfg.lr * cfg.lr_decay(step, n_steps)  # as fit() / fit_encoder() decay it
            values["throughput/frames_per_s"] = min(cfg.batch_size, len(data)) / max(seconds, 1e-9)
            board.scalars(step + 1, values)
        if opt is not None and checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < n_steps:
            save_checkpoint(step + 1, opt, encoder)

    try:
        if encoder is None:
            poses, opt = fit(model, data, cfg, loss, n_steps, poses=poses, seed=seed, use_penet=penet,
                             on_step=on_step, optimizer_state=opt_state, start_step=start)
            export_poses = poses.pose.detach().cpu()
        else:
            opt = fit_encoder(model, encoder, ImageFrames(data, images), cfg, loss, n_steps, seed=seed,
                              use_penet=penet, on_step=on_step, optimizer_state=opt_state, start_step=start)
            export_poses = encoder_poses(encoder, images.flatten(0, 1)).cpu()  # every (frame, view) image
    finally:
        if board is not None:
            board.close()
    record = {"command": "handtools personalize", "inputs": [str(p) for p in paths], "base_model": identity,
              "preset": preset, "mode": mode, "steps": n_steps, "frames": len(data), "shape_only": baseline,
              "use_depth": use_depth, "penet": penet}
    save_checkpoint(n_steps, opt, poses if encoder is None else encoder)
    arrays, report = export_mano(model.cpu(), base, record, fit_poses=export_poses)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(out, buf.getvalue())
    log.info(f"personalize: wrote {out} and {ckpt} (regressor residual {report['regressor_residual_m']:.1e} m, "
             f"pose-corrective export residual {report['posedirs_residual_m']:.1e} m)")
    emit_path(out)


def _board(logdir: Optional[Path], start: int, overwrite: bool):
    """The TensorBoard writer of --tensorboard (None without it); a new run refuses earlier
    events in the folder unless --overwrite (then deletes them), a resumed one continues them."""
    if logdir is None:
        return None
    from handtools.io.tensorboard import TensorBoardWriter

    if logdir.exists() and not logdir.is_dir():
        raise OutputExistsError(f"{logdir}: --tensorboard takes a folder; this is a file")
    old = sorted(logdir.glob("events.out.tfevents.*")) if start == 0 and logdir.is_dir() else []
    if old and not overwrite:
        raise OutputExistsError(f"{logdir}: holds TensorBoard events of an earlier run (use --overwrite to replace "
                                "them, or another --tensorboard folder)")
    for f in old:
        f.unlink()
    return TensorBoardWriter(logdir, purge_step=start + 1 if start else None)
