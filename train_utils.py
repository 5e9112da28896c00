"""The one training loop of the toolkit: every prior (Glow, RealNVP, noisy Glow, NCSN) trains through :func:`train`.

What a run writes under ``TrainConfig.run_dir``::

    config.json          {"train": TrainConfig fields, "model": the model/data hyper-parameters}
    checkpoints/         tf.train.CheckpointManager: model, optimizer, step counter, EMA weights
    logs/                TensorBoard scalars (loss, gradient norm, learning rate, steps/s, eval metrics)
                         and the image summaries returned by ``sample_fn``
    (whatever sample_fn writes, e.g. samples/step_000500.png)

Re-running with the same ``run_dir`` resumes from the latest checkpoint and continues the step count up to
``TrainConfig.steps``; the model section of ``config.json`` must match (a different model needs a new run_dir).
On resume the input pipeline and the global random seed restart (the seed is offset by the step so that noise
is not replayed); weights, optimizer moments, EMA weights and the step counter are restored exactly.

Distribution (``TrainConfig.strategy``):

- ``"default"``: one device (the first GPU if there is one, else the CPU);
- ``"mirrored"``: ``tf.distribute.MirroredStrategy`` over all local GPUs (or all logical CPUs when there is
  no GPU; the tests use two logical CPUs);
- ``"multi_worker"``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the hosts listed in ``TF_CONFIG``;
  only the chief (worker 0) writes checkpoints, summaries and figures; every worker runs the whole input
  pipeline and keeps its part of each global batch; on resume the chief restores and copies its state to the
  other workers (no shared filesystem needed). Commands and details: docs/scale_out.md.

The dataset yields *global* batches of ``batch_size`` examples; they are split across replicas. ``loss_fn``
returns per-example losses ``[B_replica]``; the step averages them over the global batch
(``tf.nn.compute_average_loss``), all-reduces the gradients, clips their global norm and applies Adam, so a
mirrored run computes the same update as one device.

A step whose loss or gradient norm is NaN/Inf stops the run with :class:`NonFiniteLossError` (a
:class:`~pipeline.errors.UserError`: the CLIs print one line) before anything is saved, so the newest checkpoint
on disk is the last good one.

Model contract: ``build_model()`` returns a ``tf.Module`` whose ``trainable_variables`` are all created by the
time it returns (call the network once on a dummy or first batch). Use ``tf_keras`` (Keras 2) layers or plain
``tf.Variable``s inside it: Keras 3 layers keep their variables out of ``tf.Module`` tracking.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import pathlib
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pipeline  # noqa: F401  (sets TensorFlow's environment, e.g. oneDNN, before TensorFlow loads)
import tensorflow as tf

from pipeline.errors import UserError, read_json

log = logging.getLogger("basis")

STRATEGIES = ("default", "mirrored", "multi_worker")
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"


class NonFiniteLossError(UserError):
    """The loss or the gradient norm became NaN/Inf; the newest checkpoint on disk is the last good one."""


@dataclass
class TrainConfig:
    """Optimisation settings of one run; saved under ``"train"`` in ``run_dir/config.json``."""
    run_dir: str                        # checkpoints, config.json, TensorBoard logs, sample figures
    steps: int                          # total optimizer steps (a resumed run continues up to this number)
    batch_size: int                     # GLOBAL batch size (split across replicas)
    learning_rate: float = 1e-3         # Adam step size after warm-up
    warmup_steps: int = 0               # linear warm-up of the learning rate from 0 over this many steps
    lr_decay_start: int = 0             # cosine decay of the learning rate from this step to `steps`; 0: none
    lr_final_fraction: float = 0.1      # the learning rate at `steps` as a fraction of learning_rate (with decay)
    grad_clip_norm: float | None = 1.0  # clip the global gradient norm (after the all-reduce); None: no clipping
    ema_decay: float = 0.0              # exponential moving average of the weights; 0 disables it
    log_every: int = 50                 # steps between TensorBoard scalars / log lines
    checkpoint_every: int = 500         # steps between checkpoints (and eval_fn calls); the last step always saves
    sample_every: int = 0               # steps between sample_fn calls; 0: only at the end
    keep_checkpoints: int = 3           # checkpoints kept on disk
    seed: int = 0                       # global seed of TF, NumPy and Python
    jit_compile: bool = False           # XLA-compile the loss-and-gradient computation
    strategy: str = "default"           # "default" | "mirrored" | "multi_worker"

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise UserError(f"--strategy: must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise UserError(f"--steps and --batch-size must be >= 1 (got {self.steps}, {self.batch_size})")
        if not self.learning_rate > 0:
            raise UserError(f"--learning-rate must be > 0, not {self.learning_rate}")
        if self.lr_decay_start < 0 or (self.lr_decay_start and self.lr_decay_start >= self.steps):
            raise UserError(f"--lr-decay-start must be 0 (no decay) or a step before --steps {self.steps}, "
                            f"not {self.lr_decay_start}")
        if not 0.0 < self.lr_final_fraction <= 1.0:
            raise UserError(f"--lr-final-fraction must be in (0, 1], not {self.lr_final_fraction}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError(f"--ema-decay must be in [0, 1), not {self.ema_decay}")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise UserError(f"--grad-clip-norm must be > 0 (or None), not {self.grad_clip_norm}")
        if min(self.log_every, self.checkpoint_every, self.keep_checkpoints) < 1 or self.sample_every < 0:
            raise UserError("log_every, checkpoint_every and keep_checkpoints must be >= 1; sample_every >= 0")


def add_train_arguments(parser, defaults: TrainConfig | None = None) -> None:
    """Add the :class:`TrainConfig` flags to an ``argparse`` parser (shared by every training CLI)."""
    d = defaults or TrainConfig(run_dir="runs/model", steps=10000, batch_size=64)
    g = parser.add_argument_group("training (train_utils.TrainConfig)")
    g.add_argument("--run-dir", default=d.run_dir,
                   help=f"output folder: checkpoints/, logs/, config.json, figures; an existing one is resumed "
                        f"(default {d.run_dir})")
    g.add_argument("--steps", type=int, default=d.steps, help=f"total optimizer steps (default {d.steps})")
    g.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"global batch size, examples per step over all replicas (default {d.batch_size})")
    g.add_argument("--learning-rate", type=float, default=d.learning_rate,
                   help=f"Adam learning rate after warm-up (default {d.learning_rate:g})")
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                   help=f"linear learning-rate warm-up, steps (default {d.warmup_steps})")
    g.add_argument("--lr-decay-start", type=int, default=d.lr_decay_start,
                   help="cosine decay of the learning rate from this step to --steps (a function of the step, so "
                        f"a resumed run follows the same curve); 0: constant (default {d.lr_decay_start})")
    g.add_argument("--lr-final-fraction", type=float, default=d.lr_final_fraction,
                   help=f"learning rate at --steps as a fraction of --learning-rate (default {d.lr_final_fraction:g})")
    g.add_argument("--grad-clip-norm", type=float, default=d.grad_clip_norm,
                   help=f"clip the global gradient norm to this value; 0 disables (default {d.grad_clip_norm})")
    g.add_argument("--ema-decay", type=float, default=d.ema_decay,
                   help=f"decay of the moving average of the weights used for sampling/eval; 0 disables "
                        f"(default {d.ema_decay})")
    g.add_argument("--log-every", type=int, default=d.log_every,
                   help=f"steps between logged scalars (default {d.log_every})")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help=f"steps between checkpoints and held-out evaluations (default {d.checkpoint_every})")
    g.add_argument("--sample-every", type=int, default=d.sample_every,
                   help=f"steps between sample figures; 0: only at the end (default {d.sample_every})")
    g.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints,
                   help=f"checkpoints kept on disk (default {d.keep_checkpoints})")
    g.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    g.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=d.jit_compile,
                   help=f"XLA-compile the loss and gradients (default {d.jit_compile})")
    g.add_argument("--strategy", choices=STRATEGIES, default=d.strategy,
                   help=f"default: one device; mirrored: all local GPUs; multi_worker: hosts in TF_CONFIG "
                        f"(default {d.strategy})")


def train_config_from_args(args) -> TrainConfig:
    """The :class:`TrainConfig` of parsed :func:`add_train_arguments` flags.

    With ``--strategy multi_worker`` this also makes the process's strategy (see :func:`make_strategy`), so call
    it before the CLI builds its dataset.
    """
    cfg = TrainConfig(run_dir=args.run_dir, steps=args.steps, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, warmup_steps=args.warmup_steps,
                      lr_decay_start=args.lr_decay_start, lr_final_fraction=args.lr_final_fraction,
                      grad_clip_norm=args.grad_clip_norm or None, ema_decay=args.ema_decay,
                      log_every=args.log_every, checkpoint_every=args.checkpoint_every,
                      sample_every=args.sample_every, keep_checkpoints=args.keep_checkpoints, seed=args.seed,
                      jit_compile=args.jit_compile, strategy=args.strategy)
    if cfg.strategy == "multi_worker":
        make_strategy(cfg.strategy)
    return cfg


# --------------------------------------------------------------------------------------------------- helpers

def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (see the module docstring).

    ``"multi_worker"`` is made once per process and must be made before TensorFlow runs its first operation
    (it configures the collective ops of the eager context, which is only possible at program start-up):
    :func:`train_config_from_args` does it, so CLIs get it before they build their datasets; library callers
    call ``make_strategy("multi_worker")`` first thing. Later calls return the same instance.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return _multi_worker_strategy()
    raise UserError(f"--strategy: must be one of {', '.join(STRATEGIES)}, not {name!r}")


@functools.cache
def _multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    """The process's ``MultiWorkerMirroredStrategy`` over the cluster in ``TF_CONFIG`` (one local worker without)."""
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as err:
        if "program startup" not in str(err):
            raise
        raise RuntimeError("train_utils.make_strategy('multi_worker') must be called before TensorFlow runs any "
                           "operation (before building datasets or models)") from err


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def _copy_from_chief(strategy: tf.distribute.Strategy, variables) -> None:
    """Give every replica of every worker the values that ``variables`` have on the chief's first replica.

    Only the chief restores a checkpoint when a multi-worker run resumes (the hosts need not share a
    filesystem); this all-reduce, in which only global replica 0 contributes non-zeros, hands its weights,
    optimizer moments, step counter and EMA weights to the other workers.
    """
    by_dtype: dict[tf.DType, list[tf.Variable]] = {}
    for v in variables:  # one all-reduce per dtype (a batched all-reduce needs one dtype)
        by_dtype.setdefault(v.dtype, []).append(v)

    def chief_values(group):
        context = tf.distribute.get_replica_context()
        is_first = tf.equal(context.replica_id_in_sync_group, 0)
        return context.all_reduce(tf.distribute.ReduceOp.SUM,
                                  [tf.where(is_first, v.read_value(), tf.zeros_like(v)) for v in group])

    @tf.function
    def copy():
        for group in by_dtype.values():
            values = strategy.run(chief_values, args=(group,))
            for v, value in zip(group, values):
                v.assign(strategy.experimental_local_results(value)[0])

    copy()


def _lr_schedule(learning_rate: float, warmup_steps: int = 0, decay_start: int = 0, total_steps: int = 0,
                 final_fraction: float = 0.1):
    """Adam's step size as a function of the optimizer step: linear warm-up, constant, then cosine decay.

    ``learning_rate · min(1, (step + 1) / warmup_steps) · d(step)`` with ``d = 1`` before ``decay_start`` (or
    without decay) and ``d = f + (1 − f) (1 + cos(π u)) / 2``, ``u = (step − decay_start) / (total_steps −
    decay_start)`` clipped to [0, 1], after it: ``learning_rate · f`` at ``total_steps``.
    """
    import tf_keras

    class WarmupCosineDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            lr = tf.constant(learning_rate, tf.float32)
            if warmup_steps > 0:
                lr = lr * tf.minimum(1.0, (step + 1.0) / float(warmup_steps))
            if decay_start > 0:
                u = tf.clip_by_value((step - decay_start) / float(total_steps - decay_start), 0.0, 1.0)
                lr = lr * (final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + tf.cos(np.pi * u)))
            return lr

        def get_config(self):
            return {"learning_rate": learning_rate, "warmup_steps": warmup_steps, "decay_start": decay_start,
                    "total_steps": total_steps, "final_fraction": final_fraction}

    return WarmupCosineDecay()


class WeightEMA(tf.Module):
    """Exponential moving average of a list of variables (Polyak averaging).

    ``shadow <- d * shadow + (1 - d) * weight`` with ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates,
    the warm-up of ``tf.train.ExponentialMovingAverage(num_updates=n)``, so short runs are not dominated by the
    initial weights.
    """

    def __init__(self, variables, decay: float):
        super().__init__(name="ema")
        self.decay = decay
        self.shadows = [tf.Variable(v.read_value(), trainable=False, name=v.name.split(":")[0].replace("/", "_"))
                        for v in variables]

    def update(self, variables, num_updates):
        n = tf.cast(num_updates, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + n) / (10.0 + n))
        for shadow, v in zip(self.shadows, variables):
            shadow.assign(decay * shadow + (1.0 - decay) * v)

    def copy_to(self, variables) -> None:
        for shadow, v in zip(self.shadows, variables):
            v.assign(shadow)


def read_config(run_dir: str | os.PathLike) -> dict:
    """``run_dir/config.json`` as a dict with keys ``"train"`` and ``"model"``."""
    return read_json(pathlib.Path(run_dir) / CONFIG_FILE, f"not found; is {run_dir} a training run folder?")


def _json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _save_config(run_dir: pathlib.Path, cfg: TrainConfig, model_config: dict) -> None:
    """Write ``config.json``; on resume, refuse a model config different from the saved one."""
    path = run_dir / CONFIG_FILE
    model_config = _json_roundtrip(model_config)
    if path.exists():
        saved = read_config(run_dir).get("model")
        if saved != model_config:
            keys = sorted(k for k in set(saved or {}) | set(model_config)
                          if (saved or {}).get(k) != model_config.get(k))
            raise UserError(f"{path}: this run was started with a different model config (differs in: "
                            f"{', '.join(keys)}); use a new --run-dir or the run's original settings")
    path.write_text(json.dumps({"train": dataclasses.asdict(cfg), "model": model_config}, indent=2) + "\n")


def _shard_by_example(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with ``AutoShardPolicy.DATA`` unless its options name another policy.

    Under ``multi_worker`` every worker then runs the whole input pipeline and keeps its own part of each global
    batch, so a deterministic pipeline gives the batches of a one-device run. TensorFlow's default (``AUTO``)
    would shard TFRecord pipelines by file instead, which fails when there are fewer files than workers (the
    demo mel set has one per source). Single-worker strategies ignore the policy.
    """
    policy = dataset.options().experimental_distribute.auto_shard_policy
    if policy != tf.data.experimental.AutoShardPolicy.AUTO:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    tf.random.set_seed(seed)


def _as_image_batch(result) -> np.ndarray | None:
    """sample_fn's return value as ``[N, H, W, C]`` uint8/float for tf.summary.image (a PNG path or an array)."""
    if result is None:
        return None
    if isinstance(result, (str, os.PathLike)):
        image = tf.io.decode_png(tf.io.read_file(str(result)), channels=0)
        return image[None].numpy()
    array = np.asarray(result)
    return array[None] if array.ndim == 3 else array


# ----------------------------------------------------------------------------------------------- the loop

def train(build_model: Callable[[], tf.Module], loss_fn: Callable[[tf.Module, Any], tf.Tensor],
          dataset: tf.data.Dataset, cfg: TrainConfig, model_config: dict,
          sample_fn: Callable[[tf.Module, int, pathlib.Path], Any] | None = None,
          eval_fn: Callable[[tf.Module], dict[str, float]] | None = None) -> tf.Module:
    """Train (or resume) the model ``build_model()`` on ``dataset`` and return it (with EMA weights if enabled).

    Args:
        build_model: called once inside the strategy scope; returns a ``tf.Module`` whose variables all exist.
        loss_fn: ``loss_fn(model, batch) -> [B_replica]`` per-example losses (float32).
        dataset: yields global batches of ``cfg.batch_size`` examples (a tensor or a structure of tensors
            with a leading batch axis), repeated as long as needed.
        cfg: optimisation settings.
        model_config: JSON-serialisable model/data hyper-parameters, saved in ``config.json``.
        sample_fn: ``sample_fn(model, step, run_dir)`` writes figures; it may return a PNG path or an image
            batch ``[N, H, W, C]`` in [0, 1], which is also written as a TensorBoard image summary.
        eval_fn: ``eval_fn(model) -> {name: value}`` held-out metrics, called at each checkpoint and at the end.
    """
    from tqdm.auto import tqdm
    import tf_keras

    run_dir = pathlib.Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    strategy = make_strategy(cfg.strategy)
    chief = _is_chief(strategy)
    if chief:
        _save_config(run_dir, cfg, model_config)
    _seed_everything(cfg.seed)

    with strategy.scope():
        model = build_model()
        variables = list(model.trainable_variables)
        assert variables, "build_model() returned a module without trainable variables (Keras 3 layers inside?)"
        optimizer = tf_keras.optimizers.Adam(learning_rate=_lr_schedule(cfg.learning_rate, cfg.warmup_steps, cfg.lr_decay_start,
                                                                            cfg.steps, cfg.lr_final_fraction),
                                             jit_compile=cfg.jit_compile)
        optimizer.build(variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        ema = WeightEMA(variables, cfg.ema_decay) if cfg.ema_decay > 0 else None

    trackables = dict(model=model, optimizer=optimizer, step=step)
    if ema is not None:
        trackables["ema"] = ema
    checkpoint = tf.train.Checkpoint(**trackables)
    if chief:
        ckpt_dir = run_dir / CHECKPOINT_DIR
    else:  # saves like the chief (the saving code may be collective) into a scratch folder, removed at the end
        ckpt_dir = run_dir / f"worker_tmp_{strategy.cluster_resolver.task_id}"
        if tf.io.gfile.exists(str(ckpt_dir)):  # left by a run that crashed
            tf.io.gfile.rmtree(str(ckpt_dir))
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=cfg.keep_checkpoints)
    if chief and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log.info("resuming %s from step %d", manager.latest_checkpoint, int(step.numpy()))
    if cfg.strategy == "multi_worker":
        _copy_from_chief(strategy, [*model.variables, *optimizer.variables, step, *(ema.variables if ema else [])])
    start_step = int(step.numpy())
    if start_step > 0:
        _seed_everything(cfg.seed + start_step)
    if start_step >= cfg.steps:
        log.info("%s is already at step %d >= --steps %d; nothing to train", run_dir, start_step, cfg.steps)
        if ema is not None:
            ema.copy_to(variables)
        return model

    def loss_and_grads(batch):
        with tf.GradientTape() as tape:
            per_example = loss_fn(model, batch)
            tf.debugging.assert_rank(per_example, 1, message="loss_fn must return per-example losses [B]")
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=cfg.batch_size)
        return loss, tape.gradient(loss, variables)

    loss_and_grads = tf.function(loss_and_grads, jit_compile=cfg.jit_compile)

    def replica_step(batch):
        loss, grads = loss_and_grads(batch)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)]
        context = tf.distribute.get_replica_context()
        if context.num_replicas_in_sync > 1:
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        grad_norm = tf.linalg.global_norm(grads)
        if cfg.grad_clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, cfg.grad_clip_norm, use_norm=grad_norm)
        optimizer.apply_gradients(zip(grads, variables), skip_gradients_aggregation=True)
        return loss, grad_norm

    @tf.function
    def train_step(iterator):
        losses, grad_norms = strategy.run(replica_step, args=(next(iterator),))
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
        grad_norm = strategy.reduce(tf.distribute.ReduceOp.MEAN, grad_norms, axis=None)  # equal on all replicas
        step.assign_add(1)
        if ema is not None:
            ema.update(variables, step)
        return loss, grad_norm, optimizer.learning_rate

    iterator = iter(strategy.experimental_distribute_dataset(_shard_by_example(dataset)))
    writer = tf.summary.create_file_writer(str(run_dir / LOG_DIR)) if chief else tf.summary.create_noop_writer()

    def with_ema_weights(fn, *args):
        """Call ``fn`` with the EMA weights swapped in (if any), then restore the raw weights."""
        if ema is None:
            return fn(*args)
        raw = [v.read_value() for v in variables]
        ema.copy_to(variables)
        try:
            return fn(*args)
        finally:
            for v, value in zip(variables, raw):
                v.assign(value)

    def run_eval(at_step: int) -> None:
        if eval_fn is None:
            return
        metrics = with_ema_weights(eval_fn, model)
        with writer.as_default(step=at_step):
            for name, value in metrics.items():
                tf.summary.scalar(f"eval/{name}", value)
        log.info("step %d eval: %s", at_step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))

    def run_sample(at_step: int) -> None:
        if sample_fn is None or not chief:
            return
        images = _as_image_batch(with_ema_weights(sample_fn, model, at_step, run_dir))
        if images is not None:
            with writer.as_default(step=at_step):
                tf.summary.image("samples", images, max_outputs=1 if images.shape[0] == 1 else 16)

    last_saved = manager.latest_checkpoint
    window_losses: list[float] = []
    window_start = time.perf_counter()
    progress = tqdm(total=cfg.steps, initial=start_step, desc=run_dir.name, disable=None, dynamic_ncols=True)
    for current in range(start_step + 1, cfg.steps + 1):
        loss, grad_norm, lr = train_step(iterator)
        loss, grad_norm = float(loss), float(grad_norm)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            progress.close()
            writer.flush()
            kept = f"the last good checkpoint is {last_saved}" if last_saved else "no checkpoint was written"
            raise NonFiniteLossError(
                f"{run_dir}: step {current}: loss {loss}, gradient norm {grad_norm}; training stopped, {kept}. "
                f"Lower --learning-rate, add --warmup-steps or set --grad-clip-norm, then re-run to resume")
        window_losses.append(loss)
        progress.update(1)
        progress.set_postfix(loss=f"{loss:.4f}")
        if current % cfg.log_every == 0 or current == cfg.steps:
            elapsed = time.perf_counter() - window_start
            mean_loss = float(np.mean(window_losses))
            with writer.as_default(step=current):
                tf.summary.scalar("train/loss", mean_loss)
                tf.summary.scalar("train/grad_norm", grad_norm)
                tf.summary.scalar("train/learning_rate", float(lr))
                tf.summary.scalar("train/steps_per_second", len(window_losses) / max(elapsed, 1e-9))
            if progress.disable:
                log.info("step %d/%d loss %.4f (%.2f steps/s)", current, cfg.steps, mean_loss,
                         len(window_losses) / max(elapsed, 1e-9))
            window_losses, window_start = [], time.perf_counter()
        if current % cfg.checkpoint_every == 0 or current == cfg.steps:
            last_saved = manager.save(checkpoint_number=current)
            run_eval(current)
        if (cfg.sample_every and current % cfg.sample_every == 0) or current == cfg.steps:
            run_sample(current)
    progress.close()
    writer.flush()
    if not chief:
        tf.io.gfile.rmtree(str(ckpt_dir))
    if ema is not None:
        ema.copy_to(variables)
    return model


def load_model(run_dir: str | os.PathLike, build_model: Callable[[], tf.Module], use_ema: bool = True,
               checkpoint: str | None = None) -> tf.Module:
    """Build ``build_model()`` and restore the latest checkpoint of ``run_dir`` (or ``checkpoint``).

    With ``use_ema`` and a run trained with ``ema_decay > 0``, the model gets the moving-average weights.
    """
    ckpt_dir = pathlib.Path(run_dir) / CHECKPOINT_DIR
    path = checkpoint or tf.train.latest_checkpoint(str(ckpt_dir))
    if not path:
        raise UserError(f"{ckpt_dir}: no checkpoint found; train first (or check --run-dir)")
    model = build_model()
    variables = list(model.trainable_variables)
    saved_names = {name for name, _ in tf.train.list_variables(path)}
    has_ema = any(name.startswith("ema/") for name in saved_names)
    trackables = dict(model=model)
    ema = None
    if use_ema and has_ema:
        ema = WeightEMA(variables, decay=0.0)
        trackables["ema"] = ema
    status = tf.train.Checkpoint(**trackables).restore(path)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as err:
        raise UserError(f"{path}: checkpoint does not match the model built from {run_dir}/config.json "
                        f"({str(err).splitlines()[0]})") from None
    status.expect_partial()
    if ema is not None:
        ema.copy_to(variables)
    return model


def export_weights(model: tf.Module, out_dir: str | os.PathLike, step: int) -> str:
    """Save only ``model``'s variables (no optimizer state, no EMA copy) as ``out_dir/checkpoints/ckpt-<step>``.

    Call it on a model loaded with its EMA weights: the result is a slim checkpoint that :func:`load_model`
    restores like a training checkpoint (a third of the size with Adam's two moments gone).
    """
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         str(pathlib.Path(out_dir) / CHECKPOINT_DIR), max_to_keep=1)
    return manager.save(checkpoint_number=step)


def read_scalars(log_dir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar written by :func:`train` under ``log_dir``: ``{tag: [(step, value), ...]}``."""
    from tensorflow.core.util import event_pb2
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(pathlib.Path(log_dir).glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor") and not value.tensor.string_val:
                    scalars.setdefault(value.tag, []).append((int(event.step), float(tf.make_ndarray(value.tensor))))
    return scalars


def checkpoint_step(run_dir: str | os.PathLike) -> int:
    """Step number of the latest checkpoint of ``run_dir`` (0 if there is none)."""
    path = tf.train.latest_checkpoint(str(pathlib.Path(run_dir) / CHECKPOINT_DIR))
    return int(path.rsplit("-", 1)[1]) if path else 0
