"""Tests of the shared training loop (train_utils.py): resume, config, EMA, NaN guard.

The tf.distribute strategies are tested in tests/test_distributed.py."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

import train_utils
from pipeline.errors import UserError
from tests.tiny_regression import Linear, config, regression_data, squared_error, weights
from train_utils import NonFiniteLossError, load_model, train


def test_training_lowers_loss_and_writes_run_folder(tmp_path):
    evals = []
    model = train(Linear, squared_error, regression_data(), config(tmp_path, steps=30, checkpoint_every=30),
                  {"n_in": 4}, eval_fn=lambda m: evals.append(1) or {"mse": float(tf.reduce_mean(
                      squared_error(m, next(iter(regression_data())))))})
    initial = float(tf.reduce_mean(squared_error(Linear(), next(iter(regression_data())))))
    final = float(tf.reduce_mean(squared_error(model, next(iter(regression_data())))))
    assert final < 0.5 * initial
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model"] == {"n_in": 4} and saved["train"]["steps"] == 30
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-30")
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert evals == [1]


def test_resume_continues_step_count_and_matches_uninterrupted_run(tmp_path):
    straight = weights(train(Linear, squared_error, regression_data(), config(tmp_path / "a", steps=6), {}))
    first = train(Linear, squared_error, regression_data(), config(tmp_path / "b", steps=3), {})
    restored = load_model(tmp_path / "b", Linear)
    for saved, loaded in zip(weights(first), weights(restored)):
        np.testing.assert_array_equal(saved, loaded)
    # The fixed-order data repeats every 4 batches; restart the stream at batch 3 as the resumed run would see it.
    resumed = train(Linear, squared_error, regression_data().skip(3), config(tmp_path / "b", steps=6), {})
    assert train_utils.checkpoint_step(tmp_path / "b") == 6
    for a, b in zip(straight, weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_resume_refuses_a_different_model_config(tmp_path):
    train(Linear, squared_error, regression_data(), config(tmp_path, steps=1), {"width": 4})
    with pytest.raises(UserError, match="different model config.*width"):
        train(Linear, squared_error, regression_data(), config(tmp_path, steps=2), {"width": 8})


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    # Batch index 3 (the 4th step) contains a NaN; checkpoints are written every 3 steps.
    with pytest.raises(NonFiniteLossError, match=r"step 4: loss nan.*ckpt-3"):
        train(Linear, squared_error, regression_data(poison_batch=3), config(tmp_path, steps=6), {})
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-3")
    assert all(np.all(np.isfinite(w)) for w in weights(load_model(tmp_path, Linear)))


def test_ema_weights_are_returned_and_loaded(tmp_path):
    model = train(Linear, squared_error, regression_data(), config(tmp_path, steps=6, ema_decay=0.9), {})
    ema, raw = load_model(tmp_path, Linear, use_ema=True), load_model(tmp_path, Linear, use_ema=False)
    for returned, averaged in zip(weights(model), weights(ema)):
        np.testing.assert_array_equal(returned, averaged)
    assert not np.allclose(weights(ema)[0], weights(raw)[0])


def test_warmup_schedule_is_linear_then_constant():
    schedule = train_utils._lr_schedule(1e-3, 4)
    np.testing.assert_allclose([float(schedule(s)) for s in range(6)], [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_cosine_decay_runs_from_the_decay_start_to_the_final_fraction():
    schedule = train_utils._lr_schedule(1e-3, decay_start=10, total_steps=20, final_fraction=0.1)
    lrs = np.array([float(schedule(s)) for s in range(25)])
    np.testing.assert_allclose(lrs[:11], 1e-3, rtol=1e-6)                       # constant up to the start
    np.testing.assert_allclose(lrs[15], 1e-3 * (0.1 + 0.9 * 0.5), rtol=1e-6)    # half-way: cos(π/2) = 0
    np.testing.assert_allclose(lrs[20:], 1e-4, rtol=1e-5)                       # final fraction, then held
    assert np.all(np.diff(lrs[10:21]) < 0)
    with pytest.raises(UserError, match="lr-decay-start"):
        config("unused", steps=10, lr_decay_start=10)


def test_load_model_without_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no checkpoint found"):
        load_model(tmp_path, Linear)
