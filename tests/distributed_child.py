"""Child program of tests/test_distributed.py: train the tiny regression model of tests/tiny_regression.py under
one or more ``tf.distribute`` strategies in a fresh process (logical devices and ``TF_CONFIG`` must be set
before TensorFlow starts, so these runs cannot share the pytest process) and write the results as JSON.

    python -m tests.distributed_child --strategies default,mirrored --logical-cpus 2 --run-dir D --out R.json
    TF_CONFIG=... python -m tests.distributed_child --strategies multi_worker --run-dir D --out R.json

Each strategy ``s`` trains ``--steps`` steps (global batch 8) in ``<run-dir>/<s>`` and the JSON maps ``s`` to
``{"loss": mean squared error on the first global batch after training, "weights": [...],
"replica_batches": the x rows of every batch a replica of this process saw, in call order}``.
"""
from __future__ import annotations

import argparse
import json
import pathlib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", required=True, help="comma-separated train_utils strategies, run in order")
    parser.add_argument("--run-dir", required=True, help="parent folder of the runs (one sub-folder per strategy)")
    parser.add_argument("--out", required=True, help="JSON result file")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps (default 5)")
    parser.add_argument("--skip", type=int, default=0,
                        help="global batches to skip at the start of the stream, as a resumed run sees it "
                             "(default 0)")
    parser.add_argument("--logical-cpus", type=int, default=1,
                        help="split the CPU into this many logical devices (default 1)")
    args = parser.parse_args()

    import tensorflow as tf
    if args.logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

    from tests import tiny_regression as tiny
    from train_utils import make_strategy, train

    result = {}
    for name in args.strategies.split(","):
        make_strategy(name)  # multi_worker: before the first TF operation, as train_config_from_args does in CLIs
        recorder = tiny.RecordingLoss()
        cfg = tiny.config(pathlib.Path(args.run_dir) / name, steps=args.steps, strategy=name)
        model = train(tiny.Linear, recorder, tiny.regression_data(cfg.batch_size).skip(args.skip), cfg, {})
        first_batch = next(iter(tiny.regression_data(cfg.batch_size)))
        result[name] = {"loss": float(tf.reduce_mean(tiny.squared_error(model, first_batch))),
                        "weights": [w.tolist() for w in tiny.weights(model)],
                        "replica_batches": [b.tolist() for b in recorder.batches]}
    pathlib.Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
