"""Summaries and figures of the flows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from flow_models.flow_tfp_bijectors import FactorOut, leaf_bijectors
from pipeline.plotting import pyplot, save_figure


def _own_variables(bijector) -> list[tf.Variable]:
    """Variables of a leaf bijector (a coupling's include its network); none for a FactorOut container."""
    return [] if isinstance(bijector, FactorOut) else list(bijector.variables)


def variable_summary(flow) -> list[tuple[str, str, int, int]]:
    """``(bijector name, class, trainable parameters, non-trainable parameters)`` per leaf bijector of
    ``flow.bijector`` in data -> latent order, plus a ``base`` row for a learned base distribution."""
    rows = []
    for bijector in leaf_bijectors(flow.bijector):
        variables = _own_variables(bijector)
        trainable = sum(int(np.prod(v.shape)) for v in variables if v.trainable)
        frozen = sum(int(np.prod(v.shape)) for v in variables if not v.trainable)
        rows.append((bijector.name, type(bijector).__name__, trainable, frozen))
    base = [v for v in (flow.base_loc, flow.base_log_scale) if isinstance(v, tf.Variable)]
    if base:
        rows.append(("base", "learned diagonal Gaussian", sum(int(np.prod(v.shape)) for v in base), 0))
    return rows


def print_summary(flow, print_fn=print) -> int:
    """Print the trainable variables per bijector of ``flow`` (a :class:`~flow_models.flow_builder.Flow`)
    as a table and return the total number of trainable parameters."""
    rows = variable_summary(flow)
    width = max(len(name) for name, *_ in rows)
    print_fn(f"{'bijector':<{width}}  {'class':<26} {'trainable':>10} {'fixed':>8}")
    for name, kind, trainable, frozen in rows:
        print_fn(f"{name:<{width}}  {kind:<26} {trainable:>10,} {frozen:>8,}")
    total = sum(row[2] for row in rows)
    print_fn(f"{'total':<{width}}  {'':<26} {total:>10,} {sum(row[3] for row in rows):>8,}")
    return total


def save_image_grid(images: np.ndarray, path: str | Path, title: str = "", n_cols: int = 8,
                    spectrogram: bool = False) -> Path:
    """Save ``images [N, H, W, C]`` in [0, 1] as a PNG grid. ``spectrogram``: mel patches (frequency on the
    vertical axis, low frequencies at the bottom, ``magma`` colour map)."""
    plt = pyplot()
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    n = len(images)
    n_cols = min(n_cols, n)
    n_rows = int(np.ceil(n / n_cols))
    height, width = images.shape[1:3]
    cell = 1.6 if not spectrogram else 1.6 * max(1.0, width / height)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, 1.6 * n_rows + (0.4 if title else 0)),
                             squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= n:
            continue
        image = images[index]
        if spectrogram:
            ax.imshow(image[..., 0], origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1)
        elif image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(image)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)
