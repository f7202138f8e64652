"""Draw the bundled open hand model in a few poses: docs/images/open_hand.png.

    $ python docs/scripts/plot_open_hand.py [--model PATH] [--out docs/images/open_hand.png]

The model is loaded and posed with ``smplx.MANO`` exactly as handtools does; the
poses are built from anatomical angles (``handtools.core.hand.joint_limits``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import smplx  # noqa: E402
import torch  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # noqa: E402
from smplx.utils import Struct  # noqa: E402

from handtools.core.hand.joint_limits import angles_to_pose  # noqa: E402
from handtools.core.hand.open_hand import bundled_model_path  # noqa: E402

FINGERS = {"index": (1, 2, 3), "middle": (4, 5, 6), "little": (7, 8, 9),
           "ring": (10, 11, 12), "thumb": (13, 14, 15)}


def pose_from(flex: dict[str, tuple[float, float, float]],
              abd: dict[str, float] | None = None) -> np.ndarray:
    """(45,) axis-angle from per-finger flexion (deg, 3 joints) and MCP abduction (deg)."""
    ang = np.zeros((1, 15, 3))
    for name, ids in FINGERS.items():
        for j, a in zip(ids, flex.get(name, (0.0, 0.0, 0.0))):
            ang[0, j - 1, 0] = np.deg2rad(a)
        if abd and name in abd:
            ang[0, ids[0] - 1, 1] = np.deg2rad(abd[name])
    return angles_to_pose(ang)[0]


POSES = {
    "flat": pose_from({}),
    "fist": pose_from({f: (85.0, 100.0, 60.0) for f in ("index", "middle", "ring", "little")}
                      | {"thumb": (35.0, 40.0, 50.0)}),
    "pointing": pose_from({"middle": (85.0, 100.0, 60.0), "ring": (85.0, 100.0, 60.0),
                           "little": (85.0, 100.0, 60.0), "thumb": (30.0, 35.0, 40.0)}),
    "spread": pose_from({"thumb": (-10.0, 0.0, 0.0)},
                        {"index": 18.0, "middle": 3.0, "ring": -12.0, "little": -25.0,
                         "thumb": 25.0}),
}
VIEWS = (("back", 60, -90), ("palm", -60, -90), ("side", 5, -150))


def shade(ax, verts: np.ndarray, faces: np.ndarray, elev: float, azim: float) -> None:
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    e, a = np.deg2rad(elev), np.deg2rad(azim)
    eye = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    light = eye + np.array([0.3, 0.3, 0.5])
    light /= np.linalg.norm(light)
    lam = np.clip(n @ light, 0.0, 1.0)
    skin = np.array([0.93, 0.72, 0.58])
    col = np.clip(skin[None] * (0.30 + 0.75 * lam[:, None]), 0, 1)
    pc = Poly3DCollection(tri, facecolors=col, edgecolors=(0, 0, 0, 0.08), linewidths=0.2)
    ax.add_collection3d(pc)
    c = verts.mean(axis=0)
    r = np.abs(verts - c).max()
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_zlim(c[2] - r, c[2] + r)
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=bundled_model_path())
    parser.add_argument("--out", type=Path, default=Path("docs/images/open_hand.png"))
    args = parser.parse_args()
    data = dict(np.load(args.model))
    layer = smplx.MANO(str(args.model.parent), is_rhand=True, data_struct=Struct(**data),
                       use_pca=False, flat_hand_mean=True)
    faces = layer.faces.astype(np.int64)
    fig = plt.figure(figsize=(4 * len(POSES), 4 * len(VIEWS)))
    for col, (name, pose) in enumerate(POSES.items()):
        out = layer(hand_pose=torch.tensor(pose[None], dtype=torch.float32))
        # rotate the model frame (y = back of hand) so the plot's z axis is the back of the hand
        v = out.vertices[0].detach().numpy().astype(np.float64)[:, [0, 2, 1]] * np.array([1, -1, 1])
        for row, (vname, elev, azim) in enumerate(VIEWS):
            ax = fig.add_subplot(len(VIEWS), len(POSES), row * len(POSES) + col + 1,
                                 projection="3d")
            shade(ax, v, faces, elev, azim)
            ax.set_title(f"{name} ({vname})", fontsize=12)
    fig.suptitle("handtools open hand model (MANO-compatible, right hand)", fontsize=15)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=70)
    print(args.out)


if __name__ == "__main__":
    main()
