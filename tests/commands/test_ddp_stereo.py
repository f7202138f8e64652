"""selfsup-stereo under a real two-process `torchrun` (gloo, CPU) against one process with twice the batch.

What must match exactly: the data each step sees (rank r takes every 2nd sample of the single
run's batch of 2B), the number of steps, the checkpoint written once (rank 0). What matches only
within a tolerance: the losses. The network is a ResNet whose BatchNorm layers normalise with
the statistics of the batch each process sees (B pairs, 2B images, against 2B pairs, 4B images in
one process: SyncBatchNorm, which would make them equal, runs only on CUDA), so the two runs are
not the same computation. Measured (8 pairs, B=2, 2 epochs, 2-core CPU, seed 0): epoch-mean
loss 74.30821, 74.31255 (one process, batch 4) and 74.30491, 74.27303 (two processes, batch 2
each): relative differences 4e-5 and 5e-4, while the loss itself moves by 6e-4 over the run.
The weights are not compared: Adam's first steps move every weight by about lr times the sign
of its gradient, so the small gradients BatchNorm perturbs flip many signs (the cosine of the two
runs' weight changes was 0.17, that of a one-process batch-2 run against the batch-4 run 0.13).
The trainer's exact two-process equivalence without BatchNorm is
tests/core/learning/test_trainer.py::test_ddp_two_processes_match_single_process.
"""

from __future__ import annotations

import json
import sys

import pytest

from handtools.core.learning.checkpoints import load_checkpoint
from tests.conftest import handtools_cmd, run_shell

pytestmark = pytest.mark.slow  # about 4 minutes on the shared 2-core machine


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    h = f"OMP_NUM_THREADS=1 {handtools_cmd()} -q"
    run_shell(f"{h} synth -n 8 --image-size 160x120 --seed 1 --out fs | {h} crop --size 64 --center gt --out cs "
              f"| {h} pretrain --encoder resnet18 --epochs 1 --batch-size 4 --lr 1e-3 --milestones '' --out prior.pt",
              cwd=root, check=True)
    p = run_shell(f"{h} synth --views 2 --domain indoor -n 8 --image-size 160x120 --seed 2 --out fi "
                  f"| {h} crop --size 64 --center gt --out ci | {h} mask --out mi", cwd=root, check=True)
    return root, p.stdout.split()


def test_two_process_torchrun_matches_one_process_with_twice_the_batch(setup):
    root, masked = setup
    args = f"--init prior.pt --epochs 2 --lr 1e-4 --milestones 1 --seed 0 --device cpu {' '.join(masked)}"
    one = run_shell(f"OMP_NUM_THREADS=1 {handtools_cmd()} -q selfsup-stereo {args} --batch-size 4 --out one.pt",
                    cwd=root)
    assert one.returncode == 0, one.stderr
    two = run_shell(f"OMP_NUM_THREADS=1 {sys.executable} -m torch.distributed.run --standalone --nproc_per_node 2 "
                    f"-m handtools -q selfsup-stereo {args} --batch-size 2 --out two.pt", cwd=root)
    assert two.returncode == 0, two.stderr
    assert two.stdout.split() == ["two.pt"]  # rank 0 alone prints (and writes) the checkpoint
    a, b = load_checkpoint(root / "one.pt"), load_checkpoint(root / "two.pt")
    assert a["global_step"] == b["global_step"] == 4 and a["finished"] and b["finished"]
    la = [json.loads(x) for x in (root / "one.log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (root / "two.log.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in la] == [r["steps"] for r in lb] == [2, 2]
    assert [r["lr"] for r in la] == [r["lr"] for r in lb]
    for ra, rb in zip(la, lb):  # BatchNorm statistics per process: see the module docstring
        assert rb["loss"] == pytest.approx(ra["loss"], rel=2e-3)
        for k in ("loss_photo", "loss_edge", "loss_laplacian", "loss_mask"):  # measured: within 0.2 %
            assert rb[k] == pytest.approx(ra[k], rel=1e-2), k
        # loss_normal (weight 0.001) is left out: measured 0.34 vs 0.25 (a batch-2 single process: 0.30),
        # the face normals of a nearly unchanged mesh being the term BatchNorm noise moves most
