"""Image loaders: the offline sets, and the MNIST/CIFAR-10 file formats on small arrays."""
import pickle

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.image_datasets import crop_images, load_images, pad_images


@pytest.mark.parametrize("name,shape", [("digits", (8, 8, 1)), ("mnist_subset", (28, 28, 1))])
def test_offline_sets(name, shape):
    train, test = load_images(name, "train"), load_images(name, "test")
    assert train.shape[1:] == shape and test.shape[1:] == shape
    assert train.dtype == np.float32 and 0.0 <= train.min() and train.max() == 1.0
    assert len(train) > 3 * len(test) > 0


def test_pad_to():
    x = load_images("mnist_subset", "test", pad_to=32)
    assert x.shape[1:] == (32, 32, 1) and x[:, :2].max() == 0 and x[:, -2:].max() == 0


def test_crop_undoes_pad_on_stacked_estimates():
    x = load_images("mnist_subset", "test")[:6]
    padded = pad_images(x, 32)
    assert padded.shape == (6, 32, 32, 1) and padded.sum() == x.sum()
    stacked = np.stack([padded, padded[::-1]])              # [2 sources, N, H, W, C], as BASIS returns them
    np.testing.assert_array_equal(crop_images(stacked, 28), np.stack([x, x[::-1]]))
    assert pad_images(x, 28) is x


def test_keras_mnist_file(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mnist.npz", x_train=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
             x_test=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), y_train=np.zeros(5), y_test=np.zeros(3))
    assert load_images("mnist", "train", data_dir=str(tmp_path)).shape == (5, 28, 28, 1)
    assert load_images("mnist", "test", data_dir=str(tmp_path)).shape == (3, 28, 28, 1)


def test_cifar10_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    image = np.zeros((3, 32, 32), np.uint8)
    image[0] = 255                                           # pure red: channel-last conversion must keep it red
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = np.concatenate([image.reshape(1, -1), rng.integers(0, 256, (1, 3072), dtype=np.uint8)])
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [0, 1]}, f)
    train = load_images("cifar10", "train", data_dir=str(tmp_path))
    assert train.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(train[0, 5, 5], [1.0, 0.0, 0.0])


def test_absent_dataset_says_where_it_looked(tmp_path):
    with pytest.raises(UserError, match=r"mnist\.npz not found in .*cannot download"):
        load_images("mnist", "train", data_dir=str(tmp_path))
    with pytest.raises(UserError, match="unknown image dataset"):
        load_images("svhn")
