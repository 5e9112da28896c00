"""Session 23: re-rank the MNIST chains that `bench/chains.py images ... --judge-glow pretrained/glow_mnist
--save-chains --out DIR` saved, by the Glow's likelihood of the *quantised* chains too (rounded to the 256-level
grid, then dequantised with uniform noise as in training, 4 draws averaged). Usage: python results/chains/session23_rejudge.py DIR"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import pipeline  # noqa: F401,E402  (oneDNN before TF)
import tensorflow as tf
from scipy.stats import spearmanr
from flow_models.flow_builder import load_flow
from pipeline.image_datasets import pad_images

run = sys.argv[1]
d = json.load(open(f"{run}/chains.json")); z = np.load(f"{run}/chains.npz")
chains = z["chains"]                                            # [S, K, N, 28, 28, 1]
psnr = np.array(d["psnr"]); ncsn = np.array(d["nll"])[-1]
flow = load_flow(Path(__file__).resolve().parents[2] / "pretrained" / "glow_mnist")
flat = pad_images(np.clip(chains.reshape(-1, 28, 28, 1), 0, 1), 32).astype(np.float32)
draws = []
tf.random.set_seed(0)
for _ in range(4):
    deq = flow.preprocess.dequantize(tf.constant(flat))
    draws.append(np.concatenate([-flow.log_prob(deq[i:i + 256]).numpy() for i in range(0, len(flat), 256)]))
glow = np.mean(draws, axis=0).reshape(chains.shape[:3]).sum(axis=0)            # [K, N]
def report(name, j):
    k = psnr.shape[0]
    picked = psnr[j.argmin(0), np.arange(psnr.shape[1])]
    rho = np.nanmean([spearmanr(-j[:, i], psnr[:, i]).correlation for i in range(psnr.shape[1])])
    print(f"| {name} | {picked.mean():.2f} | {np.median(picked):.2f} | {rho:.3f} | {np.median(j.std(0)):.1f} |")
print("| judge (K = 8) | picked mean | median | Spearman with PSNR | spread, nats |")
print("|---|---|---|---|---|")
report("NCSN bound (final)", ncsn)
report("Glow, chains as they are", np.array(d["judge_nll"]))
report("Glow, quantised + dequantised (4 draws)", glow)
for w in (0.1, 1.0):
    report(f"NCSN + {w} x Glow quantised", ncsn + w * glow)
print(f"single chain mean {psnr.mean():.2f}, oracle {psnr.max(0).mean():.2f}")
