"""``handtools personalize``: a personal hand model (DeepHandMesh) from multi-view captures."""

from __future__ import annotations

import io
import json
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


def _read_capture(paths, use_depth: bool, joints_from: str, max_frames: Optional[int]):
    """Frames of all shards: joints (F, 21, 3), valid (F, 21), depth (F, C, H, W) or None, K, T_view."""
    import torch

    from handtools.core.geometry.triangulation import triangulate_dlt
    from handtools.io.shards import ShardReader

    joints, valid, depth, ks, ts = [], [], [], [], []
    views = None
    for p in paths:
        need = ["K", "T_view"] + (["depth"] if use_depth else [])
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
    cat = lambda xs: np.concatenate(xs)[:max_frames]  # noqa: E731
    joints_all, valid_all = cat(joints), cat(valid)
    if (valid_all.sum(1) < 5).any():
        raise InputError("some frames have fewer than 5 known joints (triangulation needs >= 2 confident views)")
    return joints_all, valid_all, (cat(depth) if use_depth else None), cat(ks), cat(ts)


def personalize(
    out: Annotated[Path, typer.Option("--out", "-o", help="Personal hand model to write (.npz, MANO format); "
                                      "the checkpoint goes next to it (.pt).")],
    inputs: Inputs = None,
    fit_poses: Annotated[bool, typer.Option(
        "--fit-poses/--encoder",
        help="Per-frame pose variables (CPU, minutes) or the paper's image encoder (not in this version).")] = True,
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
    from handtools.core.methods.deephandmesh.export import export_mano
    from handtools.core.methods.deephandmesh.fit import FrameData, FramePoses, fit, palm_vertices
    from handtools.core.methods.deephandmesh.loss import DeepHandMeshLoss
    from handtools.core.methods.deephandmesh.model import PersonalHandModel
    from handtools.core.methods.deephandmesh.views import crop_depth_views
    from handtools.core.render import Renderer

    if not fit_poses:
        raise InputError("the image-encoder mode (--encoder) is not in this version; use --fit-poses")
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
                  **({"lap_target": lap_target} if lap_target is not None else {}))
    if baseline:
        cfg = replace(cfg, pose_corrective="linear")
    n_steps = steps or cfg.steps or 1000
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

    joints, valid, depth, K, T = _read_capture(paths, use_depth, joints_from, max_frames)
    if depth is not None:
        depth, K = crop_depth_views(depth, K, T, joints, cfg.depth_size)
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)  # noqa: E731
    data = FrameData(f32(np.nan_to_num(joints)), torch.as_tensor(valid, device=dev),
                     None if depth is None else f32(depth), f32(K), f32(T))
    model = PersonalHandModel(base, cfg, shape_space=baseline, seed=seed).to(dev)
    renderer = Renderer("auto", device=dev) if depth is not None else None
    loss = DeepHandMeshLoss(cfg, model.faces, palm_vertices(model.weights), renderer)
    poses, opt_state, start = None, None, 0
    if resume:
        state = torch.load(ckpt, map_location=dev, weights_only=True)
        model.load_state_dict(state["model"])
        poses = FramePoses(model, data.joints)
        poses.load_state_dict(state["poses"])
        opt_state, start = state["optimizer"], int(state["step"])
    log.info(f"personalize: {len(data)} frames x {data.K.shape[1]} views from {len(paths)} shard(s), "
             f"{'shape-only baseline' if baseline else 'DeepHandMesh'} ({preset} preset), {n_steps} steps on {dev}")

    def on_step(step: int, terms: dict) -> None:
        if step % 100 == 0 or step == n_steps - 1:
            log.info("step %d: %s", step, " ".join(f"{k} {v:.3f}" for k, v in terms.items()))

    poses, opt = fit(model, data, cfg, loss, n_steps, poses=poses, seed=seed, use_penet=penet, on_step=on_step,
                     optimizer_state=opt_state, start_step=start)
    record = {"command": "handtools personalize", "inputs": [str(p) for p in paths], "base_model": identity,
              "preset": preset, "steps": n_steps, "frames": len(data), "shape_only": baseline,
              "use_depth": use_depth, "penet": penet}
    arrays, report = export_mano(model.cpu(), base, record, fit_poses=poses.pose.detach().cpu())
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(out, buf.getvalue())
    ckbuf = io.BytesIO()
    torch.save({"kind": "deephandmesh", "config": json.dumps(asdict(cfg)), "model": model.state_dict(),
                "poses": poses.state_dict(), "optimizer": opt.state_dict(), "step": n_steps,
                "shape_only": baseline, "hand_model": identity}, ckbuf)
    write_atomic(ckpt, ckbuf.getvalue())
    log.info(f"personalize: wrote {out} and {ckpt} (regressor residual {report['regressor_residual_m']:.1e} m, "
             f"pose-corrective export residual {report['posedirs_residual_m']:.1e} m)")
    emit_path(out)
