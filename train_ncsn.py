"""Train an NCSN prior (noise-conditional score network, Song & Ermon 2019) on images or mel patches.

Examples:
    python train_ncsn.py --dataset digits --run-dir runs/ncsn_digits
    python train_ncsn.py --dataset melspec --mel-dir data/demo/mel --source piano --run-dir runs/ncsn_piano
    python train_ncsn.py --dataset melspec --help        # the defaults shown are those of the chosen --dataset

Re-running with the same --run-dir resumes from its last checkpoint (up to --steps); data and network flags
must be repeated as they were (the sampler flags may change). The run folder gets checkpoints/, logs/
(TensorBoard), config.json and samples/step_*.png (mel runs: also samples/step_*_<i>.wav).
NCSNv2 options: --sigma-max auto (largest pairwise distance of the training data), --n-sigmas auto,
--scale-by-sigma, --ema-decay 0.999, --sampler-init gaussian.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import pathlib
from typing import Sequence

from ncsn.config import NCSNConfig, SamplerConfig
from ncsn.sigmas import ncsnv2_n_sigmas
from ncsn.training import DATASETS, SOURCES, DataConfig, drop_sampler_from_saved_config, load_score_model, \
    make_eval_fn, make_loss_fn, make_sample_fn, model_config_dict, read_run_configs, saved_network_config, \
    sigma_max_from_data
from pipeline.errors import UserError, run_cli
from train_utils import TrainConfig, add_train_arguments, train, train_config_from_args

log = logging.getLogger("basis")

# Per-dataset defaults: small enough to train on a 2-core CPU (see docs/ncsn.md for the measured times).
PRESETS = {
    "digits": dict(width=32, batch_size=64, steps=3000, n_samples=64),
    "mnist_subset": dict(width=32, batch_size=64, steps=5000, n_samples=64),
    "mnist": dict(width=32, batch_size=64, steps=10000, n_samples=64),
    "cifar10": dict(width=64, batch_size=64, steps=20000, n_samples=64),
    "melspec": dict(width=16, batch_size=16, steps=2000, n_samples=8),
}


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _auto_or(kind):
    def parse(text: str):
        if text == "auto":
            return text
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected 'auto' or a {kind.__name__}, got {text!r}") from None
    return parse


def build_parser(dataset: str = "digits") -> argparse.ArgumentParser:
    preset = PRESETS.get(dataset, PRESETS["digits"])
    net, sampler = NCSNConfig(), SamplerConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default=dataset,
                   help="training data: digits (8x8), mnist_subset (5000 real MNIST, offline), mnist, cifar10 "
                        "(their files must be present, see --data-dir), or melspec (mel TFRecords) "
                        f"(default {dataset})")
    g.add_argument("--data-dir", help="folder holding mnist.npz or cifar-10-batches-py (default: ~/.keras/datasets, "
                                      "then data/images)")
    g.add_argument("--mel-dir", default=DataConfig.mel_dir,
                   help=f"melspec: TFRecord folder with train/, test/ and mel_params.json, as written by "
                        f"pipeline.wav_to_spec or `make demo` (default {DataConfig.mel_dir})")
    g.add_argument("--source", choices=SOURCES, default="piano", help="melspec: which instrument (default piano)")
    g.add_argument("--tilt-db", type=float, default=0.0,
                   help="melspec: timbre augmentation, a random spectral tilt of up to ± this many dB from the "
                        "lowest to the highest mel band on each training patch; 0: off (default 0)")
    g.add_argument("--init-from", metavar="RUN_DIR",
                   help="start a new run from the weights (EMA when kept) of another run's latest checkpoint, e.g. "
                        "to fine-tune a prior on other data; the network flags must match that run's")

    g = p.add_argument_group("score network (ncsn.config.NCSNConfig)")
    g.add_argument("--width", type=int, default=preset["width"],
                   help=f"channels of the first stage; parameters grow as width² (default for {dataset}: "
                        f"{preset['width']}; the NCSN paper used 128 for CIFAR-10)")
    g.add_argument("--channel-multipliers", type=_int_list, default=net.channel_multipliers,
                   help=f"channels of each stage / width, one per stage (default "
                        f"{','.join(map(str, net.channel_multipliers))})")
    g.add_argument("--downsample", type=_int_list, default=tuple(int(d) for d in net.downsample),
                   help=f"1 where a stage halves the resolution, one per stage (default "
                        f"{','.join(str(int(d)) for d in net.downsample)})")
    g.add_argument("--dilations", type=_int_list, default=net.dilations,
                   help=f"dilation of each stage's 3x3 convs (default {','.join(map(str, net.dilations))})")
    g.add_argument("--n-res-blocks", type=int, default=net.n_res_blocks,
                   help=f"residual blocks per stage (default {net.n_res_blocks})")
    g.add_argument("--sigma-max", type=_auto_or(float), default=net.sigma_max,
                   help=f"σ_1, largest noise std in input units ([0, 1] pixels / scaled dB); 'auto': the largest "
                        f"Euclidean distance between training examples (NCSNv2) (default {net.sigma_max:g})")
    g.add_argument("--sigma-min", type=float, default=net.sigma_min,
                   help=f"σ_L, smallest noise std, input units (default {net.sigma_min:g})")
    g.add_argument("--n-sigmas", type=_auto_or(int), default=net.n_sigmas,
                   help=f"L, number of geometric noise levels; 'auto': NCSNv2's rule for the data dimension "
                        f"(default {net.n_sigmas})")
    g.add_argument("--scale-by-sigma", action=argparse.BooleanOptionalAction, default=net.scale_by_sigma,
                   help=f"NCSNv2: divide the network output by σ (default {net.scale_by_sigma})")

    g = p.add_argument_group("annealed Langevin sampler for the figures (ncsn.config.SamplerConfig)")
    g.add_argument("--n-steps-per-level", type=int, default=sampler.n_steps_per_level,
                   help=f"T, Langevin steps per noise level (default {sampler.n_steps_per_level})")
    g.add_argument("--step-lr", type=float, default=sampler.step_lr,
                   help=f"ε; the step at level i is ε σ_i²/σ_L² (default {sampler.step_lr:g})")
    g.add_argument("--final-denoise", action=argparse.BooleanOptionalAction, default=sampler.final_denoise,
                   help=f"finish with x + σ_L² s(x, σ_L) (default {sampler.final_denoise})")
    g.add_argument("--n-samples", type=int, default=preset["n_samples"],
                   help=f"samples per figure (default for {dataset}: {preset['n_samples']})")
    g.add_argument("--sampler-init", choices=("uniform", "gaussian"), default=sampler.init,
                   help="starting points: U[0, 1] (NCSN) or N(0.5, σ_1²) (NCSNv2) (default uniform)")
    g.add_argument("--n-wavs", type=int, default=4,
                   help="melspec: samples written as wavs (Griffin-Lim) with each figure (default 4)")
    g.add_argument("--sample-only", action="store_true",
                   help="do not train: draw samples from the latest checkpoint of --run-dir with the sampler flags "
                        "(the data and network settings are read from its config.json)")
    g.add_argument("--eval-examples", type=int, default=256,
                   help="held-out examples for the DSM loss at each checkpoint (melspec: also on as many patches "
                        "of the other instrument, logged as eval/dsm_loss_other and eval/dsm_loss_gap = other - "
                        "own); 0 disables (default 256)")

    add_train_arguments(p, TrainConfig(run_dir=f"runs/ncsn_{dataset}", steps=preset["steps"],
                                       batch_size=preset["batch_size"], learning_rate=1e-3,
                                       grad_clip_norm=None))
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Two passes: the first finds --dataset, whose presets become the defaults of the second."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--dataset", choices=DATASETS, default="digits")
    known, _ = first.parse_known_args(argv)
    return build_parser(known.dataset).parse_args(argv)


def resolve_sigmas(args, data: DataConfig, image_shape) -> tuple[float, int]:
    """σ_1 and L from the flags; 'auto' values are computed once and reused when the run resumes."""
    saved = saved_network_config(args.run_dir)
    sigma_max, n_sigmas = args.sigma_max, args.n_sigmas
    if sigma_max == "auto":
        sigma_max = saved["sigma_max"] if saved else sigma_max_from_data(data)
        log.info("sigma_max = %.4f (largest pairwise distance of the training data)", sigma_max)
    if n_sigmas == "auto":
        n_sigmas = saved["n_sigmas"] if saved else ncsnv2_n_sigmas(sigma_max, args.sigma_min, math.prod(image_shape))
        log.info("n_sigmas = %d (NCSNv2 rule)", n_sigmas)
    return float(sigma_max), int(n_sigmas)


def sampler_config_from_args(args) -> SamplerConfig:
    if args.n_samples < 1:
        raise UserError("--n-samples must be >= 1")
    return SamplerConfig(n_steps_per_level=args.n_steps_per_level, step_lr=args.step_lr,
                         final_denoise=args.final_denoise, n_samples=args.n_samples, init=args.sampler_init)


def sample_only(args) -> int:
    """Samples (figure, and wavs for mel) from the latest checkpoint of ``args.run_dir``."""
    from train_utils import checkpoint_step
    model = load_score_model(args.run_dir)
    _, _, data = read_run_configs(args.run_dir)
    sample_fn = make_sample_fn(sampler_config_from_args(args), data, seed=args.seed, n_wavs=args.n_wavs)
    sample_fn(model, checkpoint_step(args.run_dir), pathlib.Path(args.run_dir))
    return 0


def initial_weights_from(run_dir: str, network: NCSNConfig, build):
    """``build`` wrapped to load ``run_dir``'s latest weights (EMA when kept); a :class:`UserError` when that run's
    network differs from ``network``. (A resumed run then restores its own checkpoint over them.)"""
    import dataclasses
    from train_utils import load_model
    saved = saved_network_config(run_dir)
    if saved is None:
        raise UserError(f"--init-from {run_dir}: no NCSN run there (no readable config.json)")
    ours = json.loads(json.dumps(dataclasses.asdict(network)))
    differs = sorted(k for k in set(saved) | set(ours) if saved.get(k) != ours.get(k))
    if differs:
        raise UserError(f"--init-from {run_dir}: its network differs in {', '.join(differs)}; "
                        f"repeat its network flags")
    return lambda: load_model(run_dir, build, use_ema=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    drop_sampler_from_saved_config(args.run_dir)
    if args.sample_only:
        return sample_only(args)
    train_cfg = train_config_from_args(args)
    data = DataConfig(dataset=args.dataset, data_dir=args.data_dir, mel_dir=args.mel_dir, source=args.source,
                      tilt_db=args.tilt_db)
    image_shape = data.image_shape()
    sigma_max, n_sigmas = resolve_sigmas(args, data, image_shape)
    network = NCSNConfig(image_shape=image_shape, width=args.width, channel_multipliers=args.channel_multipliers,
                         downsample=tuple(bool(d) for d in args.downsample), dilations=args.dilations,
                         n_res_blocks=args.n_res_blocks, sigma_max=sigma_max, sigma_min=args.sigma_min,
                         n_sigmas=n_sigmas, scale_by_sigma=args.scale_by_sigma)
    if args.eval_examples < 0:
        raise UserError("--eval-examples must be >= 0")
    sampler = sampler_config_from_args(args)

    from ncsn.model import ScoreNetwork
    dataset = data.dataset_fn("train", train_cfg.batch_size, shuffle=True, repeat=True, seed=train_cfg.seed)
    eval_fn = None
    if args.eval_examples:      # melspec: also the loss on the other instrument (eval/dsm_loss_other, eval/dsm_loss_gap)
        other = data.other_source().examples("test", args.eval_examples) if data.is_mel else None
        eval_fn = make_eval_fn(data.examples("test", args.eval_examples), other=other)
    model_config = model_config_dict(network, data)
    build = lambda: ScoreNetwork(network, seed=train_cfg.seed).build()     # noqa: E731
    if args.init_from:
        build = initial_weights_from(args.init_from, network, build)
        model_config["init_from"] = args.init_from
    model = train(build, make_loss_fn(), dataset, train_cfg, model_config,
                  sample_fn=make_sample_fn(sampler, data, seed=train_cfg.seed, n_wavs=args.n_wavs),
                  eval_fn=eval_fn)
    log.info("%s: %d parameters; samples in %s/samples", train_cfg.run_dir, model.n_parameters(), train_cfg.run_dir)
    return 0


if __name__ == "__main__":
    run_cli(main)
