"""Everything ``train_ncsn.py`` needs around :func:`train_utils.train`: data, loss, held-out metric, samples.

A run's ``config.json`` holds, under ``"model"``::

    {"network": NCSNConfig fields, "data": DataConfig fields, "sigma_levels": [σ_1, …, σ_L]}

which is all :func:`load_score_model` needs to rebuild the network (BASIS separation uses it). A resumed run
must repeat these settings. The sampler settings are not part of the model (they may change between
invocations of a run): the ones that made the latest figures are in ``samples/sampler.json``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from ncsn.config import NCSNConfig, SamplerConfig
from ncsn.losses import dsm_loss, random_dsm_loss
from ncsn.model import ScoreNetwork
from ncsn.sample_io import save_image_grid, save_mel_grid, save_mel_wavs
from ncsn.sampling import AnnealedLangevin, initial_samples
from ncsn.sigmas import geometric_sigmas, max_pairwise_distance
from pipeline.errors import UserError
from pipeline.image_datasets import IMAGE_DATASETS, load_images
from pipeline.mel import MelConfig

log = logging.getLogger("basis")

DATASETS = IMAGE_DATASETS + ("melspec",)
SOURCES = ("piano", "violin")
SAMPLER_FILE = "sampler.json"
IMAGE_SHAPES = {"digits": (8, 8, 1), "mnist_subset": (28, 28, 1), "mnist": (28, 28, 1), "cifar10": (32, 32, 3)}


@dataclass(frozen=True)
class DataConfig:
    """What the prior is trained on. Images are ``[H, W, C]`` in [0, 1]; mel patches ``[n_mels, frames, 1]``."""
    dataset: str = "digits"              # one of DATASETS
    data_dir: str | None = None          # folder with mnist.npz / cifar-10-batches-py (image datasets)
    mel_dir: str = "data/demo/mel"       # TFRecord folder of pipeline.wav_to_spec (melspec)
    source: str = "piano"                # melspec: which instrument's patches
    tilt_db: float = 0.0                 # melspec training: random spectral tilt augmentation, ± dB over the band

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise UserError(f"--dataset: must be one of {', '.join(DATASETS)}, not {self.dataset!r}")
        if self.tilt_db < 0 or (self.tilt_db and not self.is_mel):
            raise UserError(f"--tilt-db: must be >= 0 and only applies to --dataset melspec (got {self.tilt_db})")
        if self.source not in SOURCES:
            raise UserError(f"--source: must be one of {', '.join(SOURCES)}, not {self.source!r}")

    @property
    def is_mel(self) -> bool:
        return self.dataset == "melspec"

    def other_source(self) -> "DataConfig":
        """The same data of the other instrument (melspec), e.g. to check that a prior rejects it."""
        return dataclasses.replace(self, source=next(s for s in SOURCES if s != self.source))

    def mel_config(self) -> MelConfig:
        from pipeline.dataloader import load_mel_config
        return load_mel_config(self.mel_dir)

    def image_shape(self) -> tuple[int, int, int]:
        if self.is_mel:
            cfg = self.mel_config()
            return (cfg.n_mels, cfg.patch_frames, 1)
        return IMAGE_SHAPES[self.dataset]

    def dataset_fn(self, split: str, batch_size: int, shuffle: bool, repeat: bool, seed: int = 0) -> tf.data.Dataset:
        """Batches ``[batch_size, *image_shape]`` float32 in [0, 1] of ``split`` ('train' or 'test')."""
        if self.is_mel:
            from pipeline.dataloader import source_patch_dataset
            return source_patch_dataset(self.mel_dir, split, self.source, batch_size, shuffle=shuffle,
                                        repeat=repeat, seed=seed, tilt_db=self.tilt_db if split == "train" else 0.0)
        images = load_images(self.dataset, split, self.data_dir)
        ds = tf.data.Dataset.from_tensor_slices(images)
        if shuffle:
            ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        return ds.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)

    def examples(self, split: str, max_examples: int) -> np.ndarray:
        """The first ``max_examples`` examples of ``split`` in file order, ``[n, *image_shape]``."""
        batches, n = [], 0
        for batch in self.dataset_fn(split, min(256, max_examples), shuffle=False, repeat=False):
            batches.append(batch.numpy())
            n += len(batches[-1])
            if n >= max_examples:
                break
        if not batches:
            raise UserError(f"--dataset {self.dataset}: the {split} split is empty")
        return np.concatenate(batches)[:max_examples]


def sigma_max_from_data(data: DataConfig, max_examples: int = 2000) -> float:
    """NCSNv2 Technique 1: σ_1 = the largest Euclidean distance between two training examples."""
    return max_pairwise_distance(data.examples("train", max_examples), max_examples=max_examples)


def model_config_dict(network: NCSNConfig, data: DataConfig) -> dict:
    """The ``"model"`` section of ``config.json``."""
    sigma_levels = geometric_sigmas(network.sigma_max, network.sigma_min, network.n_sigmas)
    data_dict = dataclasses.asdict(data)
    if not data.tilt_db:
        del data_dict["tilt_db"]     # runs started before the augmentation existed resume with an equal config
    return {"network": dataclasses.asdict(network), "data": data_dict,
            "sigma_levels": [float(s) for s in sigma_levels]}


def configs_from_dict(model_config: dict) -> tuple[NCSNConfig, DataConfig]:
    """Inverse of :func:`model_config_dict` (a :class:`UserError` on a config not written by it)."""
    try:
        return NCSNConfig.from_dict(model_config["network"]), DataConfig(**model_config["data"])
    except (KeyError, TypeError) as err:
        raise UserError(f"config.json: not an NCSN run ({err!r} in its model section)") from None


def make_loss_fn() -> Callable[[ScoreNetwork, tf.Tensor], tf.Tensor]:
    """``loss_fn(model, batch [B, H, W, C]) -> [B]``: σ²-weighted DSM at uniformly drawn levels.

    The stateless seed of each step comes from TF's global seed (set and offset on resume by
    ``train_utils.train``) folded with the replica id, so replicas draw different noise.
    """
    def loss_fn(model: ScoreNetwork, batch: tf.Tensor) -> tf.Tensor:
        seed = tf.random.uniform([2], minval=-2**31, maxval=2**31 - 1, dtype=tf.int32)
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.random.experimental.stateless_fold_in(seed, replica)
        return random_dsm_loss(model, batch, model.sigma_levels, seed)
    return loss_fn


def make_eval_fn(held_out: np.ndarray, batch_size: int = 64, seed: int = 1234,
                 other: np.ndarray | None = None, per_level: bool = False) -> Callable[[ScoreNetwork], dict]:
    """``eval_fn(model) -> metrics``: DSM loss on ``held_out [N, H, W, C]`` at every level with fixed noise.

    Metrics (per example, same units as ``train/loss``): ``dsm_loss`` (mean over levels), and
    ``dsm_loss_level_first`` / ``dsm_loss_level_last`` at σ_1 and σ_L. With ``other [M, H, W, C]`` (held-out
    examples of the *other* source), also ``dsm_loss_other`` (the same loss on them) and ``dsm_loss_gap`` =
    other − own: how much better the prior explains its own source than the other one. BASIS needs that gap:
    fine-tuned priors with a lower own loss but a smaller gap separated worse (results/prior_finetune/).
    With ``per_level``, also ``dsm_loss_per_level``: the list of the losses at σ_1 … σ_L.
    """
    examples = tf.constant(held_out, tf.float32)
    noise = tf.random.stateless_normal(examples.shape, [seed, 0])
    if other is not None:
        other_examples = tf.constant(other, tf.float32)
        other_noise = tf.random.stateless_normal(other_examples.shape, [seed, 0])   # common noise: a steadier gap
    compiled = {}

    def eval_fn(model: ScoreNetwork) -> dict[str, float]:
        if id(model) not in compiled:   # one trace per model

            @tf.function
            def level_loss(x, level_noise, level):
                sigma_index = tf.fill(tf.shape(x)[:1], level)
                return tf.reduce_sum(dsm_loss(model, x, model.sigma_levels, sigma_index, level_noise))
            compiled[id(model)] = level_loss
        def loss_per_level(x: tf.Tensor, x_noise: tf.Tensor) -> list[float]:
            per_level = []
            for level in range(int(model.sigma_levels.shape[0])):
                totals = [compiled[id(model)](x[i:i + batch_size], x_noise[i:i + batch_size], tf.constant(level))
                          for i in range(0, int(x.shape[0]), batch_size)]
                per_level.append(float(tf.reduce_sum(totals)) / int(x.shape[0]))
            return per_level

        levels = loss_per_level(examples, noise)
        metrics = {"dsm_loss": float(np.mean(levels)), "dsm_loss_level_first": levels[0],
                   "dsm_loss_level_last": levels[-1]}
        if per_level:
            metrics["dsm_loss_per_level"] = levels
        if other is not None:
            metrics["dsm_loss_other"] = float(np.mean(loss_per_level(other_examples, other_noise)))
            metrics["dsm_loss_gap"] = metrics["dsm_loss_other"] - metrics["dsm_loss"]
        return metrics
    return eval_fn


def make_sample_fn(sampler_config: SamplerConfig, data: DataConfig, seed: int = 0, n_wavs: int = 4,
                   jit_compile: bool = False) -> Callable[[ScoreNetwork, int, pathlib.Path], pathlib.Path]:
    """``sample_fn(model, step, run_dir)``: annealed Langevin samples as ``samples/step_XXXXXXX.png``.

    Mel runs also write the first ``n_wavs`` samples as ``samples/step_XXXXXXX_<i>.wav`` (Griffin-Lim).
    The sampler settings go to ``samples/sampler.json``. Returns the PNG path (``train_utils`` copies it into
    TensorBoard).
    """
    mel_cfg = data.mel_config() if data.is_mel else None
    samplers = {}

    def sample_fn(model: ScoreNetwork, step: int, run_dir: pathlib.Path) -> pathlib.Path:
        if id(model) not in samplers:   # one sampler (one trace) per model
            samplers[id(model)] = AnnealedLangevin.from_config(model, model.sigma_levels, sampler_config,
                                                               jit_compile=jit_compile)
        x_init = initial_samples(sampler_config.n_samples, model.config.image_shape,
                                 float(model.sigma_levels[0]), sampler_config.init, seed)
        samples = samplers[id(model)].sample(x_init, seed)
        if sampler_config.clip_output:
            samples = tf.clip_by_value(samples, 0.0, 1.0)
        samples = samples.numpy()
        stem = pathlib.Path(run_dir) / "samples" / f"step_{step:07d}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        (stem.parent / SAMPLER_FILE).write_text(json.dumps(dataclasses.asdict(sampler_config), indent=1) + "\n")
        if mel_cfg is None:
            path = save_image_grid(samples, stem.with_suffix(".png"))
        else:
            path = save_mel_grid(samples, mel_cfg, stem.with_suffix(".png"), label=f"{data.source} step {step}")
            save_mel_wavs(samples[:n_wavs], mel_cfg, stem)
        log.info("samples written to %s", path)
        return path
    return sample_fn


def load_score_model(run_dir: str | pathlib.Path, use_ema: bool = True, checkpoint: str | None = None) -> ScoreNetwork:
    """The trained :class:`ScoreNetwork` of ``run_dir`` (EMA weights when the run kept them), from its latest
    checkpoint or from ``checkpoint`` (a checkpoint prefix such as ``run/checkpoints/ckpt-500``).

    ``model(x, sigma_index)`` is the score at ``model.sigma_levels[sigma_index]`` in the run's input units
    (``model.config.image_shape``; [0, 1] pixels or scaled mel dB).
    """
    from train_utils import load_model, read_config
    model_config = read_config(run_dir).get("model") or {}
    network, _ = configs_from_dict(model_config)
    model = load_model(run_dir, lambda: ScoreNetwork(network), use_ema=use_ema, checkpoint=checkpoint)
    saved = np.asarray(model_config.get("sigma_levels", []), np.float32)
    if saved.shape != model.sigma_levels.shape or not np.allclose(saved, model.sigma_levels.numpy(), rtol=1e-5):
        raise UserError(f"{run_dir}/config.json: sigma_levels do not match sigma_max/sigma_min/n_sigmas; "
                        f"the file was edited by hand")
    return model


def read_run_configs(run_dir: str | pathlib.Path) -> tuple[NCSNConfig, SamplerConfig, DataConfig]:
    """The network and data configs of ``run_dir/config.json`` and the sampler of its latest figures
    (``samples/sampler.json``; the defaults when the run has written no figure yet)."""
    from train_utils import read_config
    network, data = configs_from_dict(read_config(run_dir).get("model") or {})
    sampler_path = pathlib.Path(run_dir) / "samples" / SAMPLER_FILE
    sampler = SamplerConfig(**json.loads(sampler_path.read_text())) if sampler_path.exists() else SamplerConfig()
    return network, sampler, data


def drop_sampler_from_saved_config(run_dir: str | pathlib.Path) -> None:
    """Runs started before the sampler left the model section (2026-11-24) kept it in ``config.json``;
    remove it there so that they resume with the current flags instead of failing the config check."""
    path = pathlib.Path(run_dir) / "config.json"
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        return   # train_utils reports the broken file
    if isinstance(saved.get("model"), dict) and "sampler" in saved["model"]:
        del saved["model"]["sampler"]
        path.write_text(json.dumps(saved, indent=2) + "\n")
        log.info("%s: moved the sampler settings out of the model section", path)


def saved_network_config(run_dir: str | pathlib.Path) -> dict | None:
    """The ``network`` section of an existing run's config.json (None for a new run)."""
    path = pathlib.Path(run_dir) / "config.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())["model"]["network"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
