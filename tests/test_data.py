"""data/: locating, verifying, splitting and batching the real Fashion-MNIST."""

from __future__ import annotations

import gzip
import shutil

import pytest
import torch

from data import Batches, DataError, locate_data_dir, make_splits, read_raw
from data.fashion_mnist import ENV_VAR, FILES


def test_raw_counts_shapes_labels(raw):
    assert raw.train_images.shape == (60000, 28, 28) and raw.train_images.dtype == torch.uint8
    assert raw.test_images.shape == (10000, 28, 28)
    assert raw.train_labels.unique().tolist() == list(range(10))
    assert torch.bincount(raw.test_labels).tolist() == [1000] * 10


def test_default_split_sizes_and_stratification(raw):
    splits = make_splits(raw, seed=3)
    assert len(splits.train[0]) == 50000 and len(splits.val[0]) == 10000
    assert torch.bincount(splits.val[1]).tolist() == [1000] * 10
    assert torch.bincount(splits.train[1]).tolist() == [5000] * 10
    assert splits.train[0].shape[1:] == (1, 28, 28) and splits.train[0].dtype == torch.float32


def test_split_is_seeded_and_disjoint(raw):
    a, b, c = (make_splits(raw, val_size=1000, train_size=3000, seed=s) for s in (7, 7, 8))
    assert torch.equal(a.val[0], b.val[0]) and torch.equal(a.train[1], b.train[1])
    assert not torch.equal(a.val[0], c.val[0])
    # No validation image is also a training image.
    train_rows = {row.numpy().tobytes() for row in a.train[0].flatten(1)}
    assert not any(row.numpy().tobytes() in train_rows for row in a.val[0].flatten(1))


def test_train_size_subset_is_stratified(small_splits):
    assert torch.bincount(small_splits.train[1]).tolist() == [200] * 10
    assert len(small_splits.val[0]) == 1000


def test_normalization_uses_train_statistics(small_splits):
    assert abs(float(small_splits.train[0].mean())) < 1e-4
    assert abs(float(small_splits.train[0].std()) - 1) < 1e-3
    # The validation split is normalized with the train numbers, so it is close to, not exactly,
    # zero-mean: proof that its own statistics were not used.
    assert float(small_splits.val[0].mean()) != pytest.approx(0.0, abs=1e-6)


def test_test_split_is_the_held_out_file(raw, small_splits):
    assert len(small_splits.test[1]) == 10000
    assert torch.equal(small_splits.test[1], raw.test_labels)


def test_a_test_subset_is_stratified_seeded_and_from_the_test_file(raw):
    a, b, c = (
        make_splits(raw, val_size=1000, train_size=2000, seed=s, test_size=1000) for s in (7, 7, 8)
    )
    assert torch.bincount(a.test[1]).tolist() == [100] * 10
    assert torch.equal(a.test[0], b.test[0]) and not torch.equal(a.test[0], c.test[0])
    pixels = ((a.test[0] * a.std + a.mean) * 255).round().to(torch.uint8).flatten(1)
    test_rows = {row.numpy().tobytes() for row in raw.test_images.flatten(1)}
    assert all(row.numpy().tobytes() in test_rows for row in pixels)


@pytest.mark.parametrize("drop_last", [False, True])
def test_every_index_once_per_epoch(drop_last):
    ids = torch.arange(103)
    batches = Batches(ids, ids, batch_size=10, shuffle=True, drop_last=drop_last, seed=1)
    assert len(batches) == (10 if drop_last else 11)
    for _ in range(2):
        seen = torch.cat([x for x, _ in batches])
        assert len(seen) == (100 if drop_last else 103)
        assert len(seen.unique()) == len(seen)
    first, second = (torch.cat([x for x, _ in batches]) for _ in range(2))
    assert not torch.equal(first, second), "a new order each epoch"


def test_batches_same_seed_same_order():
    ids = torch.arange(50)
    a = torch.cat([x for x, _ in Batches(ids, ids, 7, seed=4)])
    b = torch.cat([x for x, _ in Batches(ids, ids, 7, seed=4)])
    assert torch.equal(a, b) and not torch.equal(a, ids)


def test_batches_reject_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        Batches(torch.zeros(3), torch.zeros(3), 0)


# --- bad files: a clear DataError naming the file, never a numpy/gzip traceback -------------


@pytest.fixture
def data_copy(tmp_path):
    source = locate_data_dir(download=False)
    for name in FILES:
        shutil.copy(source / f"{name}.gz", tmp_path / f"{name}.gz")
    return tmp_path


def test_uncompressed_files_are_accepted(data_copy):
    name = "t10k-labels-idx1-ubyte"
    with gzip.open(data_copy / f"{name}.gz") as f:
        (data_copy / name).write_bytes(f.read())
    (data_copy / f"{name}.gz").unlink()
    assert read_raw(data_copy).test_labels.shape == (10000,)


def test_missing_file(data_copy):
    (data_copy / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.*missing"):
        locate_data_dir(data_copy)


def test_truncated_gzip(data_copy):
    path = data_copy / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*truncated or corrupt"):
        read_raw(data_copy)


def test_corrupt_content_fails_md5(data_copy):
    path = data_copy / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(path) as f:
        blob = bytearray(f.read())
    blob[500] = (blob[500] + 1) % 10  # still a valid label, so only the MD5 can notice
    with gzip.open(path, "wb") as f:
        f.write(bytes(blob))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: MD5"):
        read_raw(data_copy)


def test_wrong_size_plain_file(data_copy):
    (data_copy / "train-labels-idx1-ubyte.gz").unlink()
    (data_copy / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 20)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte: 24 bytes, expected 60008"):
        read_raw(data_copy)


def test_not_gzip_at_all(data_copy):
    (data_copy / "train-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: cannot be read"):
        read_raw(data_copy)


def test_env_var_is_searched(data_copy, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(data_copy))
    assert locate_data_dir(download=False) == data_copy


def test_nothing_found_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    monkeypatch.setattr("data.fashion_mnist.SYSTEM_DIR", tmp_path / "no-system")
    monkeypatch.setattr("data.fashion_mnist.CACHE_DIR", tmp_path / "no-cache")
    with pytest.raises(DataError, match="looked in: .*nowhere.*no-system.*apt-get install"):
        locate_data_dir(download=False)


def test_explicit_dir_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        locate_data_dir(tmp_path / "absent")
