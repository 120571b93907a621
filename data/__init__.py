"""Fashion-MNIST as tensors on the training device.

The whole dataset is 47 MB as uint8, so it is loaded once per process, verified, split and
normalized, and then lives on the device as a few tensors; batches are slices of those tensors
(airbench style), never a per-sample ``Dataset``/``DataLoader``.

    from data import load_splits, Batches
    splits = load_splits(device="cpu", train_size=2000)      # Splits(train, val, test, ...)
    for images, labels in Batches(*splits.train, batch_size=64, seed=0):
        ...

``locate_data_dir`` and ``read_raw`` expose the lower layers (finding and verifying the four
original IDX files); every problem with the files raises ``DataError`` with a one-line message.
"""

from data.batches import Batches
from data.fashion_mnist import (
    CLASSES,
    DataError,
    RawFashionMNIST,
    locate_data_dir,
    read_raw,
)
from data.splits import Splits, load_splits, make_splits

__all__ = [
    "CLASSES",
    "Batches",
    "DataError",
    "RawFashionMNIST",
    "Splits",
    "load_splits",
    "locate_data_dir",
    "make_splits",
    "read_raw",
]
