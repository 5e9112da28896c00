"""Whole flows: Glow/RealNVP log-det vs autodiff, log_prob consistency, Keras twin, training, resume, noisy family,
data loaders and CLIs."""
from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import tensorflow as tf

import train_glow
import train_noisy_glow
import train_realnvp
import train_utils
from flow_models import training
from flow_models.config import FlowConfig
from flow_models.flow_builder import Flow, build_bijector, load_flow, load_noisy_flows
from flow_models.flow_tfk_layers import KerasBlocks
from flow_models.flow_tfp_bijectors import data_dependent_init, inverse_and_log_det
from flow_models.utils import print_summary
from pipeline.errors import UserError
from tests.test_flow_bijectors import autodiff_log_det, data_batch, randomize

TINY = dict(image_shape=(4, 4, 2), n_levels=2, n_steps=2, hidden_width=8, num_levels=256)


def tiny_flow(architecture: str, **overrides) -> Flow:
    cfg = FlowConfig(architecture=architecture, **{**TINY, **overrides})
    flow = Flow(cfg)
    randomize(flow, seed=21, scale=0.1)
    return flow


@pytest.mark.parametrize("architecture,preprocess,base", [("glow", "centre", "normal"),
                                                          ("glow", "logit", "learned"),
                                                          ("realnvp", "logit", "normal")])
def test_whole_flow_log_det_and_log_prob(architecture, preprocess, base):
    flow = tiny_flow(architecture, preprocess=preprocess, base=base)
    x = data_batch(shape=TINY["image_shape"])
    z, log_det = inverse_and_log_det(flow.bijector, x)
    np.testing.assert_allclose(log_det.numpy(), autodiff_log_det(flow.encode, x), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(flow.decode(z).numpy(), x.numpy(), atol=1e-4)
    # change of variables: log p(x) = log p_base(z) + log|det dz/dx|, and TFP's TransformedDistribution agrees
    expected = flow.base.log_prob(z).numpy() + log_det.numpy()
    np.testing.assert_allclose(flow.log_prob(x).numpy(), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(flow.distribution.log_prob(tf.identity(x)).numpy(), expected, rtol=1e-5, atol=1e-4)
    assert flow.sample(3).shape == (3, *TINY["image_shape"])


def test_log_prob_gradient_for_basis():
    flow = tiny_flow("glow")
    x = data_batch(shape=TINY["image_shape"])
    with tf.GradientTape() as tape:
        tape.watch(x)
        log_p = flow.log_prob(x)
    score = tape.gradient(log_p, x)
    assert score.shape == x.shape and np.all(np.isfinite(score.numpy()))
    # directional finite difference in float64-free form: small step along the score raises log p
    step = 1e-3 * score / tf.norm(score)
    assert np.all((flow.log_prob(x + step) - log_p).numpy() > 0)


def test_keras_layer_glow_matches_tfp_glow():
    """Both implementations of one config start from the same weights and compute the same density."""
    cfg = FlowConfig(architecture="glow", **TINY)
    tfp_flow = build_bijector(cfg)
    keras_flow = build_bijector(cfg, blocks=KerasBlocks)
    x = data_batch(n=8, shape=TINY["image_shape"])
    with data_dependent_init():
        z_tfp, log_det_tfp = inverse_and_log_det(tfp_flow, x)
        z_keras, log_det_keras = keras_flow(x)
    np.testing.assert_allclose(z_keras.numpy(), z_tfp.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_det_keras.numpy(), log_det_tfp.numpy(), rtol=1e-5, atol=1e-4)
    x_back, _ = keras_flow(z_keras, reverse=True)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-4)


def test_config_checks_level_divisibility_and_noise_preprocessing():
    FlowConfig(architecture="glow", image_shape=(96, 64, 1), n_levels=3)             # mel patches: fine
    with pytest.raises(UserError, match="multiples of 64"):
        FlowConfig(architecture="glow", image_shape=(96, 64, 1), n_levels=6)
    with pytest.raises(UserError, match="preprocess centre"):
        FlowConfig(preprocess="logit", noise_sigma=0.1)


def test_print_summary_counts_every_trainable_variable():
    flow = tiny_flow("glow", base="learned")
    lines = []
    total = print_summary(flow, print_fn=lines.append)
    assert total == sum(int(np.prod(v.shape)) for v in flow.trainable_variables)
    assert any("level1_step1_coupling" in line for line in lines)


def short_train(run_dir, steps: int, architecture: str = "glow", **train_overrides):
    data = training.DataConfig(dataset="digits")
    flow_cfg = FlowConfig(architecture=architecture, image_shape=(8, 8, 1), n_levels=2, n_steps=2, hidden_width=16,
                          num_levels=17)
    fields = dict(run_dir=str(run_dir), steps=steps, batch_size=64, learning_rate=2e-3, checkpoint_every=steps,
                  log_every=steps, warmup_steps=0)
    fields.update(train_overrides)
    return training.train_flow(flow_cfg, data, train_utils.TrainConfig(**fields), eval_examples=256, n_samples=4)


def test_short_training_lowers_held_out_bits_per_dim_on_digits(tmp_path):
    flow = short_train(tmp_path, steps=120)
    cfg = flow.config
    untrained = training.initialized_flow(cfg, training.DataConfig(dataset="digits"))
    eval_fn = training.make_eval_fn(training.DataConfig(dataset="digits"), 64, 256)
    before, after = eval_fn(untrained)["bits_per_dim"], flow.held_out_metrics["bits_per_dim"]
    assert after < before - 0.3, (before, after)
    assert (tmp_path / "samples" / "step_000120.png").exists()


@pytest.fixture(scope="module")
def trained_digits_run(tmp_path_factory):
    """A 3-step clean Glow run on digits and the weights train() returned (shared, read-only)."""
    run_dir = tmp_path_factory.mktemp("glow_digits")
    flow = short_train(run_dir, steps=3, checkpoint_every=3)
    return run_dir, [v.numpy() for v in flow.trainable_variables]


def test_flow_save_resume_and_load(trained_digits_run, tmp_path):
    saved_dir, returned_weights = trained_digits_run
    loaded = load_flow(saved_dir)
    for a, b in zip(returned_weights, loaded.trainable_variables):
        np.testing.assert_array_equal(a, b.numpy())
    run_dir = tmp_path / "run"
    shutil.copytree(saved_dir, run_dir)
    resumed = short_train(run_dir, steps=5, checkpoint_every=3)
    assert train_utils.checkpoint_step(run_dir) == 5
    assert not np.array_equal(resumed.trainable_variables[0].numpy(), returned_weights[0])


def test_noisy_family_is_chained_from_the_smallest_sigma(trained_digits_run, tmp_path):
    clean = trained_digits_run[0]
    train_cfg = train_utils.TrainConfig(run_dir="unused", steps=2, batch_size=64, checkpoint_every=2, log_every=2)
    results = training.train_noisy_family(clean, tmp_path / "noisy", [0.5, 0.05], train_cfg, eval_examples=64,
                                          n_samples=2)
    assert [sigma for sigma, _ in results] == [0.05, 0.5]
    family = load_noisy_flows(tmp_path / "noisy")
    assert [sigma for sigma, _ in family] == [0.05, 0.5]
    assert [flow.config.noise_sigma for _, flow in family] == [0.05, 0.5]
    saved = [train_utils.read_config(tmp_path / "noisy" / name)["model"]["init_from"]
             for name in ("sigma_0.0500", "sigma_0.5000")]
    assert saved == [str(clean), str(tmp_path / "noisy" / "sigma_0.0500")]
    with pytest.raises(UserError, match="already a noisy flow"):
        training.train_noisy_family(tmp_path / "noisy" / "sigma_0.0500", tmp_path / "x", [0.1], train_cfg)


def test_cifar10_loader_on_a_small_array_of_the_same_format(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, size=(4, 3072), dtype=np.uint8), b"labels": [0] * 4}, f)
    data = training.DataConfig(dataset="cifar10", data_dir=str(tmp_path))
    assert training.image_shape_and_levels(data) == ((32, 32, 3), 256)
    batch = next(iter(training.train_dataset(data, batch_size=8))).numpy()
    raw = []
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "rb") as f:
            raw.append(pickle.load(f)[b"data"])
    raw = np.concatenate(raw).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1) / 255.0    # channels-last, [0, 1]
    assert batch.shape == (8, 32, 32, 3)
    for image in batch:                                  # every image is one of the 20 training arrays, intact
        assert np.abs(raw - image).reshape(len(raw), -1).max(axis=1).min() < 1e-6


def test_missing_dataset_and_bad_flags_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="cifar-10-batches-py not found"):
        train_glow.main(["--dataset", "cifar10", "--data-dir", str(tmp_path), "--run-dir", str(tmp_path / "r")])
    with pytest.raises(UserError, match="needs --mel-dir"):
        train_realnvp.main(["--dataset", "melspec", "--run-dir", str(tmp_path / "r")])
    with pytest.raises(UserError, match="config.json: not found; is .* a training run folder"):
        train_noisy_glow.main(["--clean-run", str(tmp_path), "--sigmas", "0.1"])


def test_train_glow_cli_on_mel_patches(mel_dir, tmp_path, capsys):
    code = train_glow.main(["--dataset", "melspec", "--mel-dir", str(mel_dir), "--source", "violin",
                            "--run-dir", str(tmp_path / "run"), "--n-levels", "3", "--n-steps", "1",
                            "--hidden-width", "8", "--steps", "2", "--batch-size", "4", "--eval-examples", "8",
                            "--n-samples", "2", "--checkpoint-every", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "glow melspec: held-out bits/dim" in out
    bits = float(out.split("held-out bits/dim ")[1].split()[0])
    assert np.isfinite(bits)
    assert load_flow(tmp_path / "run").config.image_shape == (96, 64, 1)


def test_flow_prior_scores_the_chain_raw_or_projected_onto_the_unit_box(trained_digits_run, tmp_path):
    from separation.priors import load_prior
    clip, raw = load_prior("glow", trained_digits_run[0]), load_prior("glow", trained_digits_run[0], flow_inputs="raw")
    assert raw.name.endswith("@raw_inputs") and not clip.name.endswith("@raw_inputs")
    rng = np.random.default_rng(3)
    inside = tf.constant(rng.uniform(0.1, 0.9, (2, 8, 8, 1)), tf.float32)
    outside = inside + tf.constant(rng.normal(0, 0.8, (2, 8, 8, 1)), tf.float32)   # a chain state at a large σ
    level = tf.constant(0)
    np.testing.assert_allclose(raw.score(inside, level).numpy(), clip.score(inside, level).numpy(), rtol=1e-5, atol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(outside)
        log_p = tf.reduce_sum(raw.flow.log_prob(outside))
    np.testing.assert_allclose(raw.score(outside, level).numpy(), tape.gradient(log_p, outside).numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(raw.score(outside, level).numpy(), clip.score(outside, level).numpy(), atol=1e-3)
    np.testing.assert_allclose(raw.neg_log_density(outside, None).numpy(), -raw.flow.log_prob(outside).numpy(), rtol=1e-6)
    logit_run = tmp_path / "logit"
    training.train_flow(FlowConfig(architecture="realnvp", image_shape=(8, 8, 1), n_levels=2, n_steps=2, hidden_width=8,
                                   num_levels=17, preprocess="logit"), training.DataConfig(dataset="digits"),
                        train_utils.TrainConfig(run_dir=str(logit_run), steps=1, batch_size=16, checkpoint_every=1,
                                                log_every=1, warmup_steps=0), eval_examples=16, n_samples=0)
    with pytest.raises(UserError, match="logit-preprocessed flow is undefined outside"):
        load_prior("glow", logit_run, flow_inputs="raw")
    with pytest.raises(UserError, match="--flow-inputs must be one of clip, raw"):
        load_prior("glow", trained_digits_run[0], flow_inputs="wrap")
    assert not (logit_run / "samples").exists()               # n_samples=0: no figures, and no error
