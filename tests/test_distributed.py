"""train_utils.train under tf.distribute: MirroredStrategy on two logical CPUs and MultiWorkerMirroredStrategy with
two worker processes on loopback compute the same weights as one device, with each replica on its own part of
every global batch; only the chief keeps checkpoints, and a resumed multi-worker run continues exactly.

Each distributed run is a child process (tests/distributed_child.py): logical devices and TF_CONFIG must be set
before TensorFlow starts. The one-device references train in the pytest process.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_regression import Linear, config, global_batch_rows, regression_data, squared_error, weights
from train_utils import checkpoint_step, train

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300
MW_FIRST_STEPS, MW_TOTAL_STEPS = 3, 5   # multi-worker: train 3 steps, then resume up to 5
MIRRORED_STEPS = 5
BATCH = 8                               # global batch of tests/tiny_regression.config


def child_command(out: Path, run_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.distributed_child", "--out", str(out), "--run-dir", str(run_dir), *args]


def child_env(**extra: str) -> dict[str, str]:
    return dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", **extra)


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that were free on localhost a moment ago."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(run_dirs: list[Path], out_dir: Path, *args: str) -> list[dict]:
    """Train the tiny model with ``strategy="multi_worker"`` in one process per run folder (worker ``i`` uses
    ``run_dirs[i]``; worker 0 is the chief), a cluster on loopback; returns each worker's result."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(len(run_dirs))]}
    procs, outs = [], []
    for index, run_dir in enumerate(run_dirs):
        outs.append(out_dir / f"worker{index}.json")
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(child_command(outs[-1], run_dir, "--strategies", "multi_worker", *args),
                                      cwd=REPO, env=child_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for index, (proc, log) in enumerate(zip(procs, logs)):
        assert proc.returncode == 0, f"worker {index} exited with {proc.returncode}:\n{log[-3000:]}"
    return [json.loads(out.read_text())["multi_worker"] for out in outs]


def one_device(run_dir: Path, steps: int) -> dict:
    """The reference: the same training on one device, in this process, as the children report it."""
    model = train(Linear, squared_error, regression_data(BATCH), config(run_dir, steps=steps), {})
    first_batch = next(iter(regression_data(BATCH)))
    return {"loss": float(np.mean(squared_error(model, first_batch))), "weights": weights(model)}


def assert_same_training(result: dict, reference: dict) -> None:
    assert result["loss"] == pytest.approx(reference["loss"], rel=1e-5)
    for got, want in zip(result["weights"], reference["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def assert_split_global_batches(per_replica: list[list[np.ndarray]], steps: int, skip: int = 0) -> None:
    """``per_replica[r][s]``: the x rows replica ``r`` saw at step ``s``. Each must be ``BATCH / replicas``
    rows, and together the replicas of a step must see exactly that step's global batch."""
    n_replicas = len(per_replica)
    assert all(len(batches) == steps for batches in per_replica), [len(b) for b in per_replica]
    expected = global_batch_rows(steps, BATCH, skip=skip).reshape(steps, BATCH, -1)
    for s in range(steps):
        parts = [np.asarray(batches[s]) for batches in per_replica]
        assert [len(p) for p in parts] == [BATCH // n_replicas] * n_replicas
        seen = sorted(map(tuple, np.concatenate(parts).tolist()))
        assert seen == sorted(map(tuple, expected[s].tolist())), f"step {s}: replicas did not split the batch"


# One test per strategy (each starts TensorFlow processes, so `pytest -n 2` must not repeat that work on both
# of its workers, as it would for several tests sharing a module fixture).

def test_mirrored_on_two_cpus_matches_one_device_with_half_of_each_batch_per_replica(tmp_path):
    """default and mirrored runs of MIRRORED_STEPS steps in one child with two logical CPUs."""
    out = tmp_path / "result.json"
    proc = subprocess.run(child_command(out, tmp_path, "--strategies", "default,mirrored", "--logical-cpus", "2",
                                        "--steps", str(MIRRORED_STEPS)),
                          cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert_same_training(result["mirrored"], result["default"])
    # Both replicas of a step finish before the next step starts (the gradients are all-reduced), so the
    # recorded batches come in pairs, one per replica.
    batches = result["mirrored"]["replica_batches"]
    assert len(batches) == 2 * MIRRORED_STEPS
    assert_split_global_batches([batches[0::2], batches[1::2]], MIRRORED_STEPS)
    assert_split_global_batches([result["default"]["replica_batches"]], MIRRORED_STEPS)


def test_multi_worker_on_loopback_matches_one_device_keeps_chief_checkpoints_and_resumes(tmp_path):
    """Two workers on loopback train MW_FIRST_STEPS steps, then are started again and resume up to
    MW_TOTAL_STEPS. Each worker has its own run folder, as on hosts without a shared filesystem."""
    run_dirs = [tmp_path / "chief", tmp_path / "worker1"]
    chief_dir, worker_dir = (d / "multi_worker" for d in run_dirs)   # the child's folder for the strategy
    (tmp_path / "first").mkdir()
    (tmp_path / "resumed").mkdir()

    first = run_workers(run_dirs, tmp_path / "first", "--steps", str(MW_FIRST_STEPS))
    reference = one_device(tmp_path / "one_device_first", MW_FIRST_STEPS)
    for result in first:                # the chief and worker 1 hold the same weights
        assert_same_training(result, reference)
    assert_split_global_batches([w["replica_batches"] for w in first], MW_FIRST_STEPS)
    assert checkpoint_step(chief_dir) == MW_FIRST_STEPS

    resumed = run_workers(run_dirs, tmp_path / "resumed", "--steps", str(MW_TOTAL_STEPS),
                          "--skip", str(MW_FIRST_STEPS))
    # Only the chief has the checkpoint; it hands its state to worker 1 on resume.
    reference = one_device(tmp_path / "one_device_total", MW_TOTAL_STEPS)
    for result in resumed:
        assert_same_training(result, reference)
    assert_split_global_batches([w["replica_batches"] for w in resumed], MW_TOTAL_STEPS - MW_FIRST_STEPS,
                                skip=MW_FIRST_STEPS)

    assert checkpoint_step(chief_dir) == MW_TOTAL_STEPS
    assert (chief_dir / "config.json").exists() and list((chief_dir / "logs").glob("events.out.tfevents.*"))
    # Worker 1 saved into run_dir/worker_tmp_1 and removed it; it writes no config, logs or checkpoints.
    assert worker_dir.is_dir() and sorted(p.name for p in worker_dir.iterdir()) == []
    assert not list(chief_dir.glob("worker_tmp_*"))
