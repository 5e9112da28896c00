"""BASIS: posterior of a linear mixture under Gaussian priors, mixing models against finite differences."""
import numpy as np
import pytest
import tensorflow as tf

from pipeline.errors import UserError
from pipeline.mel import MelConfig, scale_db, unscale_db
from separation.basis import BasisConfig, BasisSeparator, average_top_chains
from separation.mixing import MeanMixing, MelDbMixing
from separation.priors import GaussianPrior


def exact_posterior(means, variances, mixture, gamma, sigma):
    """Posterior of (x1, x2) per pixel for priors N(μ_k, v_k + σ²) and m ~ N((x1 + x2) / 2, γ²)."""
    a = np.array([0.5, 0.5])
    out_mean, out_var = [], []
    for mu1, mu2, v1, v2, m in zip(*(np.ravel(t) for t in (*means, *variances, mixture))):
        prior_precision = np.diag([1 / (v1 + sigma ** 2), 1 / (v2 + sigma ** 2)])
        precision = prior_precision + np.outer(a, a) / gamma ** 2
        cov = np.linalg.inv(precision)
        out_mean.append(cov @ (prior_precision @ [mu1, mu2] + a * m / gamma ** 2))
        out_var.append(np.diag(cov))
    return np.array(out_mean).T, np.array(out_var).T          # [2, n_pixels]


def two_gaussian_priors(shape, sigmas):
    """Constant Gaussian priors N(0.3, 0.02) and N(0.7, 0.02) on ``shape``."""
    return [GaussianPrior(np.full(shape, 0.3, np.float32), np.full(shape, 0.02, np.float32), sigmas),
            GaussianPrior(np.full(shape, 0.7, np.float32), np.full(shape, 0.02, np.float32), sigmas)]


def gaussian_posterior_case():
    """Two random Gaussian priors on 2 x 2 pixels, a BASIS separator with a long schedule, one mixture repeated
    for 4000 chains, and the exact posterior mean and variance at σ_L: ``(separator, means, mixture,
    mixture_value, (mean, var))``."""
    rng = np.random.default_rng(0)
    shape = (2, 2, 1)
    means = [rng.uniform(0.2, 0.8, shape).astype(np.float32) for _ in range(2)]
    variances = [rng.uniform(0.01, 0.05, shape).astype(np.float32) for _ in range(2)]
    sigmas = tuple(np.geomspace(1.0, 0.01, 10))
    priors = [GaussianPrior(m, v, sigmas) for m, v in zip(means, variances)]
    config = BasisConfig(sigma_levels=sigmas, n_steps_per_level=200, step_lr=1e-4, final_denoise=False,
                         clip=(-10.0, 10.0))
    separator = BasisSeparator(priors, MeanMixing(), config)
    mixture_value = rng.uniform(0.3, 0.7, shape).astype(np.float32)
    mixture = np.broadcast_to(mixture_value, (4000, *shape))
    exact = exact_posterior(means, variances, mixture_value, gamma=sigmas[-1], sigma=sigmas[-1])
    return separator, means, mixture, mixture_value, exact


def test_gaussian_priors_recover_the_posterior_of_a_linear_mixture():
    separator, _, mixture, mixture_value, (mean, var) = gaussian_posterior_case()
    sources = separator.separate(mixture, seed=1).numpy()
    estimated_mean = sources.mean(axis=1).reshape(2, -1)
    estimated_var = sources.var(axis=1).reshape(2, -1)
    np.testing.assert_allclose(estimated_mean, mean, atol=0.01)
    np.testing.assert_allclose(estimated_var, var, rtol=0.2)
    # Mixture consistency: the estimated sources explain the mixture.
    np.testing.assert_allclose(sources.mean(axis=0).mean(axis=0), mixture_value, atol=0.01)


def test_separation_is_deterministic_by_seed():
    sigmas = (1.0, 0.1, 0.01)
    separator = BasisSeparator(two_gaussian_priors((2, 2, 1), sigmas), MeanMixing(),
                               BasisConfig(sigma_levels=sigmas, n_steps_per_level=5))
    mixture = np.full((3, 2, 2, 1), 0.5, np.float32)
    a, b, c = (separator.separate(mixture, seed=s).numpy() for s in (4, 4, 5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_mel_mixing_adds_powers_and_its_gradient_matches_finite_differences():
    cfg = MelConfig()
    mixing = MelDbMixing(cfg)
    # Two equal sources: +3.01 dB.
    d = np.full((2, 1, 4, 4, 1), -30.0, np.float64)
    g_db = unscale_db(mixing(tf.constant(scale_db(d, cfg), tf.float64)).numpy(), cfg)
    np.testing.assert_allclose(g_db, -30.0 + 10 * np.log10(2), atol=1e-6)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0.2, 0.8, (2, 3, 4, 4, 1)), tf.float64)      # well inside the clip range
    weights = mixing.jacobian_weights(x).numpy()
    eps = 1e-6
    for k in range(2):
        bump = np.zeros(x.shape)
        bump[k] = eps
        numeric = (mixing(x + bump).numpy() - mixing(x - bump).numpy()) / (2 * eps)
        np.testing.assert_allclose(weights[k], numeric, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-12)
    with tf.GradientTape() as tape:
        tape.watch(x)
        g = tf.reduce_sum(mixing(x))
    np.testing.assert_allclose(tape.gradient(g, x).numpy(), weights, atol=1e-12)


def test_mean_mixing_gradient():
    x = tf.constant(np.random.default_rng(1).random((2, 3, 4, 4, 1)), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        g = tf.reduce_sum(MeanMixing()(x))
    np.testing.assert_allclose(tape.gradient(g, x).numpy(), MeanMixing().jacobian_weights(x).numpy())


def test_schedule_mismatch_and_shape_mismatch_are_user_errors():
    prior = GaussianPrior(np.zeros((2, 2, 1), np.float32), np.ones((2, 2, 1), np.float32), (1.0, 0.1))
    with pytest.raises(UserError, match="trained for"):
        BasisSeparator([prior, prior], MeanMixing(), BasisConfig(sigma_levels=(1.0, 0.5, 0.1)))
    separator = BasisSeparator([prior, prior], MeanMixing(), BasisConfig(sigma_levels=(1.0, 0.1), n_steps_per_level=1))
    with pytest.raises(UserError, match="do not match"):
        separator.separate(np.zeros((1, 3, 3, 1), np.float32))


def test_unstable_likelihood_step_is_refused():
    prior = GaussianPrior(np.zeros((2, 2, 1)), np.ones((2, 2, 1)), [1.0, 0.01])
    # mean of two sources: gain δ / (σ_L γ_scale)² / 2 = 1e-4 / (0.01 · 0.5)² / 2 = 2 → diverges
    with pytest.raises(UserError, match="unstable"):
        BasisSeparator([prior, prior], MeanMixing(), BasisConfig(sigma_levels=(1.0, 0.01), step_lr=1e-4, gamma_scale=0.5))
    BasisSeparator([prior, prior], MeanMixing(), BasisConfig(sigma_levels=(1.0, 0.01), step_lr=1e-4, gamma_scale=0.75))


def test_score_matching_bound_ranks_points_like_the_exact_log_density():
    """The denoising bound of an exact Gaussian score differs between points as −log N(x; μ, v) does."""
    from separation.priors import score_matching_nll
    rng = np.random.default_rng(0)
    shape, variance = (8, 8, 1), 0.04
    sigmas = tuple(np.geomspace(20.0, 1e-3, 60))
    prior = GaussianPrior(np.full(shape, 0.5, np.float32), np.full(shape, variance, np.float32), sigmas)
    x = (0.5 + rng.normal(0, 1, (4, *shape)) * np.array([0.1, 0.2, 0.3, 0.5])[:, None, None, None]).astype(np.float32)
    noise = tf.random.stateless_normal((2, 1, *shape), [0, 1])
    noise = tf.concat([noise, -noise], axis=0)          # antithetic pairs: the term linear in z cancels exactly
    bound = score_matching_nll(prior.score, tf.constant(x), tf.tile(noise, [1, 4, 1, 1, 1]), sigmas).numpy()
    exact = np.sum((x - 0.5) ** 2, axis=(1, 2, 3)) / (2 * variance)
    np.testing.assert_allclose(bound - bound[0], exact - exact[0], rtol=0.01)


def three_chain_case():
    """Two Gaussian priors, 5 mixtures, and 3 chains of each run one by one: ``(priors, mixture, config, chains
    [S, K, B, ...], nll [K, B])``; a separator with ``n_chains=3`` and the same seed draws the same chains."""
    sigmas = (1.0, 0.1, 0.01)
    shape = (2, 2, 1)
    priors = [GaussianPrior(np.full(shape, m, np.float32), np.full(shape, 0.05, np.float32), sigmas) for m in (0.3, 0.7)]
    mixture = np.random.default_rng(1).uniform(0.3, 0.7, (5, *shape)).astype(np.float32)
    config = dict(sigma_levels=sigmas, n_steps_per_level=3, step_lr=1e-4, final_denoise=False)
    every_chain = BasisSeparator(priors, MeanMixing(), BasisConfig(**config)).separate(np.tile(mixture, (3, 1, 1, 1)), seed=2)
    chains = every_chain.numpy().reshape(2, 3, 5, *shape)           # [S, K, B, ...]: the same draws, chain by chain
    nll = sum(priors[k].neg_log_density(every_chain[k], None).numpy() for k in range(2)).reshape(3, 5)
    return priors, mixture, config, chains, nll


def test_several_chains_keep_the_most_probable_one_per_mixture():
    priors, mixture, config, chains, nll = three_chain_case()
    kept = BasisSeparator(priors, MeanMixing(), BasisConfig(**config, n_chains=3)).separate(mixture, seed=2).numpy()
    np.testing.assert_allclose(kept, chains[:, nll.argmin(axis=0), np.arange(5)], atol=1e-6)
    assert len(set(nll.argmin(axis=0))) > 1                          # the test picks different chains for different mixtures
    with pytest.raises(UserError, match="n_chains"):
        BasisConfig(n_chains=0)


def test_average_top_chains_aligns_swapped_sources_before_averaging():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1, (2, 3, 4, 4, 1)).astype(np.float32)              # [S, B, ...]
    chains = np.stack([truth + 0.01 * rng.standard_normal(truth.shape).astype(np.float32) for _ in range(4)], 1)
    chains[:, 1] = chains[::-1, 1]                                             # chain 1 holds the sources swapped
    chains[:, 3] = rng.uniform(0, 1, truth.shape[:1] + truth.shape[1:])         # chain 3: a failure
    nll = np.array([[1.0] * 3, [2.0] * 3, [3.0] * 3, [9.0] * 3], np.float32)   # [K, B]: chain 0 most probable
    both = [(0, 1), (1, 0)]
    np.testing.assert_allclose(average_top_chains(chains, nll, 1, both), chains[:, 0], atol=1e-6)   # M = 1: the pick
    aligned = np.stack([chains[:, 0], chains[::-1, 1], chains[:, 2]], 1).mean(1)
    np.testing.assert_allclose(average_top_chains(chains, nll, 3, both), aligned, atol=1e-6)
    assert np.abs(aligned - truth).max() < np.abs(chains[:, 0] - truth).max()          # averaging cancels the noise
    np.testing.assert_allclose(average_top_chains(chains, nll, 3).numpy().sum(0), chains[:, :3].sum(0).mean(0),
                               atol=1e-5)                                      # the sum of the sources is kept
    unaligned = average_top_chains(chains, nll, 3)                              # identity only: the swap is averaged in
    assert np.abs(unaligned.numpy() - truth).mean() > 10 * np.abs(aligned - truth).mean()
    order = average_top_chains(chains, nll[::-1].copy(), 1, both)              # the ranking decides which chain leads
    np.testing.assert_allclose(order, chains[:, 3], atol=1e-6)


def test_several_chains_average_the_most_probable_ones_in_the_separator():
    priors, mixture, config, chains, nll = three_chain_case()
    separator = BasisSeparator(priors, MeanMixing(), BasisConfig(**config, n_chains=3, average_top=2))
    assert separator.source_permutations() == [(0, 1)]                 # two different priors: never swapped
    shared = BasisSeparator([priors[0]] * 2, MeanMixing(), BasisConfig(**config))
    assert shared.source_permutations() == [(0, 1), (1, 0)]
    best_two = np.argsort(nll, axis=0)[:2]
    expected = (chains[:, best_two[0], np.arange(5)] + chains[:, best_two[1], np.arange(5)]) / 2
    np.testing.assert_allclose(separator.separate(mixture, seed=2).numpy(), expected, atol=1e-6)
    with pytest.raises(UserError, match="average_top"):
        BasisConfig(average_top=0)


def test_early_pick_keeps_the_chain_ranked_most_probable_after_the_first_levels():
    # Level 0 moves the chains far apart (η_0 = δ σ_0²/σ_L² = 0.1); level 1 barely moves them (η_1 = δ = 1e-7),
    # so each kept chain must end where its state was at the pick.
    sigmas = (1.0, 1e-3)
    shape = (2, 2, 1)
    priors = [GaussianPrior(np.full(shape, m, np.float32), np.full(shape, 0.05, np.float32), sigmas) for m in (0.3, 0.7)]
    mixture = np.random.default_rng(1).uniform(0.4, 0.6, (6, *shape)).astype(np.float32)
    config = BasisConfig(sigma_levels=sigmas, n_steps_per_level=3, step_lr=1e-7, final_denoise=False, n_chains=4,
                         select_after_levels=1)
    separator = BasisSeparator(priors, MeanMixing(), config)
    every_chain, nll = separator.ranked_chains(mixture, seed=3, n_chains=4, rank_after=(1,))
    chains = every_chain.numpy().reshape(2, 4, 6, *shape)                    # [S, K, B, ...]
    assert nll.shape == (2, 4, 6) and np.ptp(chains, axis=1).max() > 0.2     # rankings after level 1 and at the end
    early = nll.numpy()[0].argmin(axis=0)
    assert len(set(early)) > 1
    kept = separator.separate(mixture, seed=3).numpy()
    np.testing.assert_allclose(kept, chains[:, early, np.arange(6)], atol=0.01)
    # the ranking after level l is −log N(x; μ, v + σ_l²) of the state there
    x = tf.constant(chains[0, 0])
    np.testing.assert_allclose(priors[0].neg_log_density(x, None, 1).numpy(),
                               np.sum(0.5 * ((chains[0, 0] - 0.3) ** 2 / 1.05 + np.log(2 * np.pi * 1.05)), axis=(1, 2, 3)),
                               rtol=1e-5)
    for bad in (0, 3):
        with pytest.raises(UserError, match="select_after_levels"):
            BasisConfig(sigma_levels=sigmas, select_after_levels=bad)


def test_the_bound_split_by_frame_adds_up_to_the_whole():
    from separation.priors import score_matching_nll
    rng = np.random.default_rng(4)
    shape, sigmas = (6, 5, 1), (1.0, 0.1, 0.01)
    prior = GaussianPrior(np.full(shape, 0.5, np.float32), np.full(shape, 0.04, np.float32), sigmas)
    x = tf.constant(rng.uniform(0, 1, (3, *shape)).astype(np.float32))
    noise = tf.random.stateless_normal((2, 3, *shape), [0, 7])
    whole = score_matching_nll(prior.score, x, noise, sigmas).numpy()
    by_frame = score_matching_nll(prior.score, x, noise, sigmas, keep_axis=2).numpy()
    assert by_frame.shape == (3, 5)
    np.testing.assert_allclose(by_frame.sum(axis=1), whole, rtol=1e-5)
    # a frame far from the prior's mean costs more than the others
    far = x.numpy().copy()
    far[:, :, 3] = 3.0
    far_by_frame = score_matching_nll(prior.score, tf.constant(far), noise, sigmas, keep_axis=2).numpy()
    assert (far_by_frame.argmax(axis=1) == 3).all()


def test_frame_densities_add_up_to_the_sources_density():
    sigmas = (1.0, 0.1, 0.01)
    shape = (4, 6, 1)
    priors = [GaussianPrior(np.full(shape, m, np.float32), np.full(shape, 0.05, np.float32), sigmas) for m in (0.3, 0.7)]
    separator = BasisSeparator(priors, MeanMixing(), BasisConfig(sigma_levels=sigmas, n_steps_per_level=2, step_lr=1e-4,
                                                                 stitch="select"))
    sources = separator.separate(np.full((3, *shape), 0.5, np.float32), seed=0)
    frames = separator.frame_neg_log_densities(sources, seed=0).numpy()
    assert frames.shape == (3, 6)
    exact = sum(priors[k].neg_log_density(sources[k], None).numpy() for k in range(2))   # exact for Gaussians
    np.testing.assert_allclose(frames.sum(axis=1), exact, rtol=1e-5)


def test_select_stitching_is_refused_for_priors_whose_density_does_not_split():
    sigmas = (1.0, 0.01)
    prior = GaussianPrior(np.zeros((2, 2, 1)), np.ones((2, 2, 1)), sigmas)
    prior.splits_density, prior.name = False, "glow:flow_run"           # as a flow prior says of itself
    with pytest.raises(UserError, match="glow:flow_run.*crossfade"):
        BasisSeparator([prior, prior], MeanMixing(), BasisConfig(sigma_levels=sigmas, stitch="select"))
    BasisSeparator([prior, prior], MeanMixing(), BasisConfig(sigma_levels=sigmas, stitch="crossfade"))
    with pytest.raises(UserError, match="stitch must be one of"):
        BasisConfig(stitch="blend")
    with pytest.raises(UserError, match="stitch_temperature"):
        BasisConfig(stitch_temperature=0.0)


def test_a_diverged_batch_is_reported_by_its_first_items_and_a_count():
    from separation.basis import check_finite
    sigmas = (1.0, 0.1)
    prior = GaussianPrior(np.zeros((2, 2, 1), np.float32), np.ones((2, 2, 1), np.float32), sigmas)
    separator = BasisSeparator([prior, prior], MeanMixing(), BasisConfig(sigma_levels=sigmas))
    estimates = np.zeros((2, 6, 2, 2, 1), np.float32)
    check_finite(estimates, [f"pair {i}" for i in range(6)], separator)            # finite: no error
    estimates[1, [0, 2, 3, 4, 5], 0, 0, 0] = np.nan
    with pytest.raises(UserError, match=r"^pair 0, pair 2, pair 3 and 2 more of 6: BASIS diverged"):
        check_finite(estimates, [f"pair {i}" for i in range(6)], separator)



def test_chains_started_from_estimates_still_reach_the_exact_posterior():
    """Started at level 5 of 10 from the sources swapped (a wrong assignment), the chains forget their start."""
    separator, means, mixture, _, (mean, var) = gaussian_posterior_case()
    start = np.broadcast_to(np.stack(means[::-1])[:, None], (2, *mixture.shape))
    sources = separator.separate(mixture, seed=1, start=start, start_level=5).numpy()
    np.testing.assert_allclose(sources.mean(axis=1).reshape(2, -1), mean, atol=0.01)
    np.testing.assert_allclose(sources.var(axis=1).reshape(2, -1), var, rtol=0.2)


@pytest.mark.parametrize("start_level", [0, 3, 6])
def test_started_chains_begin_at_the_start_plus_noise_of_their_level(start_level):
    """With negligible steps, what comes out is the clipped start plus N(0, σ_l0²), so the σ is the start level's."""
    sigmas = tuple(np.geomspace(1.0, 0.01, 7))
    shape = (8, 8, 1)
    config = BasisConfig(sigma_levels=sigmas, n_steps_per_level=1, step_lr=1e-12, final_denoise=False, clip=(-50.0, 50.0))
    separator = BasisSeparator(two_gaussian_priors(shape, sigmas), MeanMixing(), config)
    start = np.random.default_rng(1).uniform(0, 1, (2, 64, *shape)).astype(np.float32)
    mixture = start.mean(axis=0)
    moved = separator.separate(mixture, seed=3, start=start, start_level=start_level).numpy() - start
    assert np.std(moved) == pytest.approx(sigmas[start_level], rel=0.03)
    assert abs(np.mean(moved)) < 0.05 * sigmas[start_level]


def test_started_chains_are_clipped_first_and_work_with_several_chains():
    sigmas = (1.0, 0.1, 0.01)
    shape = (2, 2, 1)
    config = BasisConfig(sigma_levels=sigmas, n_steps_per_level=1, step_lr=1e-12, final_denoise=False, n_chains=3)
    separator = BasisSeparator(two_gaussian_priors(shape, sigmas), MeanMixing(), config)
    start = np.full((2, 4, *shape), 5.0, np.float32)           # far outside the clip range (0, 1)
    out = separator.separate(np.full((4, *shape), 0.5, np.float32), seed=0, start=start, start_level=2).numpy()
    assert out.shape == (2, 4, *shape)
    np.testing.assert_allclose(out, 1.0, atol=0.05)           # clip(5) = 1, plus σ_3 = 0.01 noise, clipped again


def test_bad_starts_are_user_errors():
    sigmas = (1.0, 0.1, 0.01)
    shape = (2, 2, 1)
    separator = BasisSeparator(two_gaussian_priors(shape, sigmas), MeanMixing(),
                               BasisConfig(sigma_levels=sigmas, n_steps_per_level=1))
    mixture = np.full((4, *shape), 0.5, np.float32)
    start = np.full((2, 4, *shape), 0.5, np.float32)
    with pytest.raises(UserError, match="start level 3 is outside the schedule's 3 levels"):
        separator.separate(mixture, start=start, start_level=3)
    with pytest.raises(UserError, match="start level 1 needs start estimates"):
        separator.separate(mixture, start_level=1)
    with pytest.raises(UserError, match=r"start estimates of shape \(2, 3, 2, 2, 1\) do not match the sources' \(2, 4, 2, 2, 1\)"):
        separator.separate(mixture, start=start[:, :3], start_level=1)
    chains = BasisSeparator(two_gaussian_priors(shape, sigmas), MeanMixing(),
                            BasisConfig(sigma_levels=sigmas, n_steps_per_level=1, n_chains=2, select_after_levels=1))
    with pytest.raises(UserError, match="--select-after-levels must be above --start-level"):
        chains.separate(mixture, start=start, start_level=1)


def test_score_cap_shrinks_only_scores_above_it_and_keeps_their_direction():
    from separation.basis import limit_score_rms
    sigma = 0.1
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((2, 3, 4, 4, 1)).astype(np.float32)
    scores[0, 0] *= 100.0          # σ · RMS ≈ 10: capped to 1
    scores[1, 2] *= 0.5            # σ · RMS ≈ 0.05: untouched
    capped = limit_score_rms(tf.constant(scores), tf.constant(sigma), 1.0).numpy()
    rms = lambda a: np.sqrt(np.mean(np.square(a)))                                              # noqa: E731
    assert rms(sigma * capped[0, 0]) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(capped[0, 0] / rms(capped[0, 0]), scores[0, 0] / rms(scores[0, 0]), rtol=1e-5)
    np.testing.assert_array_equal(capped[1, 2], scores[1, 2])
    with pytest.raises(UserError, match="score_rms_limit"):
        BasisConfig(score_rms_limit=0.0)


class FlatBoxPrior(GaussianPrior):
    """A prior with zero score that, like a flow with ``flow_inputs clip``, scores the projection onto [0, 1]."""
    clip_inputs = True

    def score(self, x, level):
        return tf.zeros_like(x)


def test_box_pull_is_the_gradient_of_the_smoothed_box_and_keeps_chains_near_it():
    sigmas = (1.0, 0.3, 0.1)
    shape = (4, 4, 1)
    flat = FlatBoxPrior(np.zeros(shape, np.float32), np.ones(shape, np.float32), sigmas)
    gauss = GaussianPrior(np.full(shape, 0.5, np.float32), np.ones(shape, np.float32), sigmas)
    separator = BasisSeparator([flat, gauss], MeanMixing(), BasisConfig(sigma_levels=sigmas, box_pull=True))
    x = tf.constant(np.random.default_rng(1).uniform(-2, 3, (2, 5, *shape)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        log_box = -tf.reduce_sum(tf.square(x - tf.clip_by_value(x, 0.0, 1.0))) / (2 * 0.3 ** 2)
    pull = separator.box_pull(x, tf.constant(0.3)).numpy()
    np.testing.assert_allclose(pull[0], tape.gradient(log_box, x).numpy()[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pull[1], 0.0)          # the Gaussian prior scores x itself: no pull

    # The mixture fixes only the sum of two flat box priors: without the pull their difference diffuses out of
    # the box; with it the chains stay within a few σ_L of it.
    mixture = np.full((64, *shape), 0.5, np.float32)
    spread = {}
    for pull_on in (False, True):
        config = BasisConfig(sigma_levels=sigmas, n_steps_per_level=200, step_lr=1e-3, final_denoise=False,
                             clip=(0.0, 1.0), box_pull=pull_on)
        sources = BasisSeparator([flat, flat], MeanMixing(), config)._anneal(
            tf.fill([2, 64, *shape], 0.5), tf.constant(mixture), tf.constant([0, 0]), 0, 3 * 200).numpy()
        spread[pull_on] = np.abs(sources - np.clip(sources, 0, 1)).max()
    assert spread[False] > 1.0
    assert spread[True] < 0.5
