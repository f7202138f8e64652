"""Joint orders and hand-topology constants: the one place they are defined.

Two joint orders meet in handtools:

* **MANO order** (16 joints, the hand model's kinematic tree)::

      0 wrist
      1 index1   2 index2   3 index3
      4 middle1  5 middle2  6 middle3
      7 little1  8 little2  9 little3
      10 ring1   11 ring2   12 ring3
      13 thumb1  14 thumb2  15 thumb3

* **FreiHAND / OpenPose order** (21 joints, every shard and metric)::

      0 wrist; thumb 1-4, index 5-8, middle 9-12, ring 13-16, little 17-20
      (each finger root to tip)

  The five fingertips are not MANO joints; they are the mesh vertices
  ``FINGERTIP_VERTICES`` (thumb, index, middle, ring, little), the FreiHAND
  convention.
"""

from __future__ import annotations

NUM_VERTICES = 778
NUM_FACES = 1538
NUM_MANO_JOINTS = 16
NUM_JOINTS = 21
NUM_SHAPE = 10
NUM_POSE_PCA = 45

#: Parent of each MANO joint (-1 for the root). ``kintree_table[0]`` in MANO files.
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

MANO_JOINT_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "little1", "little2", "little3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)

#: Fingertip vertex ids of the 778-vertex MANO topology: thumb, index, middle, ring, little.
FINGERTIP_VERTICES = (744, 320, 443, 555, 672)

JOINT_NAMES = (
    "wrist",
    "thumb1", "thumb2", "thumb3", "thumb4",
    "index1", "index2", "index3", "index4",
    "middle1", "middle2", "middle3", "middle4",
    "ring1", "ring2", "ring3", "ring4",
    "little1", "little2", "little3", "little4",
)

#: For each of the 21 joints: index into ``concat(mano_joints16, fingertips5)``.
#: Fingertips are entries 16..20 (thumb, index, middle, ring, little).
MANO_TO_FREIHAND = (
    0,
    13, 14, 15, 16,
    1, 2, 3, 17,
    4, 5, 6, 18,
    10, 11, 12, 19,
    7, 8, 9, 20,
)

#: Parent of each joint in the 21-joint order (-1 for the wrist): the skeleton's bones.
PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)

#: Bones as (parent, child) pairs in the 21-joint order, e.g. for drawing skeletons.
BONES = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)

#: Finger index (0 thumb .. 4 little) of each joint in 21-joint order; -1 for the wrist.
FINGER_OF_JOINT = (-1,) + tuple(f for f in range(5) for _ in range(4))
