"""Exploratory (session 21): BASIS-NCSN started from another method's estimates at level l0 of the shipped schedule.

The chains start at clip(estimate) + N(0, σ_l0²) instead of U[0, 1] at σ_1 and anneal through levels l0 … L − 1
with the shipped priors and basis.json (37 levels x 4 steps, select stitching). Usage:

    python results/warm_start/warm_start.py DATA/wav/test ESTIMATES/NMF OUT SEED L0

ESTIMATES/NMF holds {piano,violin}/<stem>.wav (bench/separation.py writes them); OUT gets the mels of
run_basis_sep.py's layout, to be inverted with melspec_inversion_basis.py."""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import numpy as np
import tensorflow as tf
import run_basis_sep
from pipeline.mel import mel_basis, mel_scaled
from pipeline.audio_io import load_audio
from pipeline.patches import cut_patches
from separation import audio as A

data, nmf_dir, out, seed, l0 = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
extra = sys.argv[6:]
args = run_basis_sep.build_parser().parse_args(["--dataset", "melspec", "--input", data + "/mix", "--out", out, "--seed", str(seed)] + extra)
run_basis_sep.fill_shipped_priors(args)
from separation.mixing import MelDbMixing
from separation.priors import load_prior
factor = run_basis_sep.refine_factor(args, args.piano)
priors = [load_prior("ncsn", run, "float32", factor) for run in (args.piano, args.violin)]
cfg = run_basis_sep.mel_config_of(args.piano)
sep = run_basis_sep.make_separator(priors, MelDbMixing(cfg), args, args.piano)
files = sorted(A.mixture_files(args.input))
basis = mel_basis(cfg)
hop = cfg.patch_frames // 2
inits = []
for p in files:
    m = A.prepare_mixture(p, cfg, basis, A.TARGET_RMS_DB)
    per = []
    for s in A.SOURCES:
        est = load_audio(nmf_dir / s / f"{p.stem}.wav", cfg.sample_rate)[:m.n_samples]
        mel = mel_scaled(est * m.gain, cfg, basis)[:, :m.mel.shape[1]]
        per.append(cut_patches(mel, cfg.patch_frames, hop, pad_value=0.0))
    inits.append(np.stack(per))
init = np.concatenate(inits, axis=1)[..., None].astype(np.float32)    # [S, N, 96, 64, 1]
print("init patches", init.shape, "start level", l0, "sigma", sep.config.sigma_levels[l0])
T, L = sep.config.n_steps_per_level, len(sep.config.sigma_levels)

@tf.function
def run(mixture, start, seed_t):
    noise = tf.random.stateless_normal(tf.shape(start), tf.random.experimental.stateless_fold_in(seed_t, -1))
    sources = tf.clip_by_value(start, *sep.config.clip) + sep.sigma_levels[l0] * noise
    sources = sep._anneal(sources, mixture, seed_t, l0 * T, L * T)
    sources = sep.denoise_fn(sources)
    return tf.clip_by_value(sources, *sep.config.clip)

def separate(batch, seed=0):
    start = seed - args.seed
    st = init[:, start:start + len(batch)]
    if st.shape[1] < len(batch):
        st = np.concatenate([st, np.repeat(st[:, -1:], len(batch) - st.shape[1], axis=1)], axis=1)
    return run(tf.convert_to_tensor(batch), tf.convert_to_tensor(st), sep.run_seed(seed))
sep.separate = separate
A.separate_folder(files, out, sep, cfg, 16, hop, args.seed)     # the hop the start patches were cut with
