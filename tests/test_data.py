"""Bundled digits, split, batches, and the MNIST / CIFAR-10 loaders on tiny files written here."""

import gzip
import hashlib
import pickle
import re

import numpy as np
import pytest

from refqt.data import (
    iterate_batches,
    load_cifar10,
    load_digits,
    load_digits_raw,
    load_mnist,
    read_idx,
    train_test_split,
)

# sha256 of images.tobytes() + labels.tobytes() of the bundled file, as exported from
# scikit-learn 1.9.1 by scripts/export_digits.py.
DIGITS_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"
DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


# -- bundled digits -----------------------------------------------------------------------------


def test_digits_raw_matches_the_export():
    images, labels = load_digits_raw()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,)
    assert hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest() == DIGITS_SHA256
    assert np.bincount(labels).tolist() == DIGITS_CLASS_COUNTS
    assert images.max() == 16


def test_load_digits_shapes_dtypes_and_range():
    x, y = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    flat, y_flat = load_digits(flat=True)
    assert flat.shape == (1797, 64)
    np.testing.assert_array_equal(flat, x.reshape(1797, 64))
    np.testing.assert_array_equal(y, y_flat)


# -- train_test_split ---------------------------------------------------------------------------


def test_split_is_a_stratified_partition():
    y = np.repeat(np.arange(3), [10, 20, 50])
    x = np.arange(len(y))  # each example is its own index, to check coverage
    x_train, y_train, x_test, y_test = train_test_split(x, y, test_fraction=0.2, seed=1)
    assert np.bincount(y_test).tolist() == [2, 4, 10]
    assert np.bincount(y_train).tolist() == [8, 16, 40]
    assert sorted(np.concatenate([x_train, x_test]).tolist()) == list(range(len(y)))
    np.testing.assert_array_equal(y[x_train], y_train)
    np.testing.assert_array_equal(y[x_test], y_test)
    assert np.all(np.diff(x_train) > 0) and np.all(np.diff(x_test) > 0)  # original order kept


def test_split_is_seeded():
    x, y = load_digits(flat=True)
    a = train_test_split(x, y, seed=3)
    b = train_test_split(x, y, seed=3)
    c = train_test_split(x, y, seed=4)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[2], c[2])
    assert len(a[3]) == 359


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="test_fraction must be in"):
        train_test_split(np.zeros(10), np.zeros(10, dtype=np.int64), test_fraction=fraction)


def test_split_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=re.escape("x (5,) and y (4,)")):
        train_test_split(np.zeros(5), np.zeros(4))


# -- iterate_batches ----------------------------------------------------------------------------


def test_batches_cover_every_example_once(rng):
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10)
    batches = list(iterate_batches(x, y, 4, rng=rng))
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert seen.tolist() != list(range(10))  # shuffled
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], yb)  # pairs stay together


def test_batches_in_order_and_drop_last():
    x, y = np.arange(10), np.arange(10)
    in_order = [yb.tolist() for _, yb in iterate_batches(x, y, 4, shuffle=False)]
    assert in_order == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    dropped = [yb.tolist() for _, yb in iterate_batches(x, y, 4, shuffle=False, drop_last=True)]
    assert dropped == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_batches_same_seed_same_order():
    x, y = np.arange(50), np.arange(50)
    a = [yb for _, yb in iterate_batches(x, y, 8, rng=np.random.default_rng(7))]
    b = [yb for _, yb in iterate_batches(x, y, 8, rng=np.random.default_rng(7))]
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


def test_batches_move_to_backend(backend, rng):
    x, y = load_digits()
    xb, yb = next(iterate_batches(x, y, 32, rng=rng, backend=backend))
    assert xb.shape == (32, 1, 8, 8) and yb.shape == (32,)
    assert xb.dtype == backend.dtype("float32") and yb.dtype == backend.dtype("int64")
    host_x, host_y = backend.to_numpy(xb), backend.to_numpy(yb)
    # the same rng state gives the same first batch on the host
    xh, yh = next(iterate_batches(x, y, 32, rng=np.random.default_rng(20201028)))
    np.testing.assert_array_equal(host_x, xh)
    np.testing.assert_array_equal(host_y, yh)


def test_batches_errors():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="needs rng="):
        next(iterate_batches(x, np.zeros(4), 2))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(iterate_batches(x, np.zeros(4), 0, shuffle=False))
    with pytest.raises(ValueError, match="differ in length"):
        next(iterate_batches(x, np.zeros(3), 2, shuffle=False))
    with pytest.raises(TypeError, match="host NumPy array"):
        next(iterate_batches([[0.0]], np.zeros(1), 1, shuffle=False))


# -- IDX / MNIST ----------------------------------------------------------------------------------


def idx_bytes(a: np.ndarray, type_byte: int = 0x08) -> bytes:
    """IDX encoding of ``a`` (written independently of the reader under test)."""
    header = bytes([0, 0, type_byte, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder, n_train=5, n_test=3, gz=False, dotted=False):
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        arrays[prefix] = (images, labels)
        for kind, a in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            name = f"{prefix}-{kind}"
            if dotted:
                name = name.replace("-idx", ".idx")
            data = idx_bytes(a)
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_load_mnist(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x, y = load_mnist(tmp_path, split=split)
        images, labels = arrays[prefix]
        assert x.shape == (len(labels), 1, 28, 28) and x.dtype == np.float32
        assert y.dtype == np.int64
        np.testing.assert_array_equal(np.round(x[:, 0] * 255).astype(np.uint8), images)
        np.testing.assert_array_equal(y, labels)
    flat, _ = load_mnist(tmp_path, split="test", flat=True)
    assert flat.shape == (3, 784)


def test_load_mnist_dotted_names(tmp_path):
    write_mnist(tmp_path, dotted=True)
    x, _ = load_mnist(tmp_path, split="test")
    assert x.shape == (3, 1, 28, 28)


def test_read_idx_other_dtypes(tmp_path):
    a = np.arange(-6, 6, dtype=np.int16).reshape(3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(a, type_byte=0x0B))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)


def test_mnist_missing_files_named(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((1, 2, 2), np.uint8)))
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path, split="test")
    message = str(info.value)
    assert str(tmp_path) in message and "t10k-labels-idx1-ubyte" in message
    assert "lacks t10k-labels-idx1-ubyte" in message
    with pytest.raises(FileNotFoundError, match="lacks train-images-idx3-ubyte, train-labels-idx1-ubyte"):
        load_mnist(tmp_path, split="train")
    with pytest.raises(ValueError, match="split must be"):
        load_mnist(tmp_path, split="valid")


def test_mnist_bad_magic(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x12\x34\x08\x01" + bytes(7))
    with pytest.raises(ValueError, match=re.escape("not an IDX file (bad magic number 12340801")):
        load_mnist(tmp_path, split="test")


def test_mnist_truncated(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match=re.escape("shape (3, 28, 28) (2352 bytes of data)")):
        load_mnist(tmp_path, split="test")


def test_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(ValueError, match="holds 3 images but t10k-labels-idx1-ubyte holds 2 labels"):
        load_mnist(tmp_path, split="test")


def test_mnist_wrong_rank(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 784), np.uint8)))
    with pytest.raises(ValueError, match=re.escape("expected uint8 images (N, H, W)")):
        load_mnist(tmp_path, split="test")


# -- CIFAR-10 -------------------------------------------------------------------------------------


def write_cifar(folder, n=4, protocol=2):
    """Tiny CIFAR-10 batches in the real layout: dict with b'data' (n, 3072) uint8, b'labels' list."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        batch = {b"batch_label": name.encode(), b"data": data, b"labels": labels, b"filenames": []}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        batches[name] = (data, labels)
    return batches


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_load_cifar10(tmp_path, protocol):
    batches = write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    x, y = load_cifar10(tmp_path, split="train")  # the parent folder works too
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    assert y.tolist() == [label for i in range(1, 6) for label in batches[f"data_batch_{i}"][1]]
    data3 = batches["data_batch_3"][0]
    # image 0 of batch 3 is example 8; its green plane is values 1024..2047, row by row
    green = np.round(x[8, 1] * 255).astype(np.uint8)
    np.testing.assert_array_equal(green, data3[0, 1024:2048].reshape(32, 32))
    x_test, y_test = load_cifar10(tmp_path / "cifar-10-batches-py", split="test")
    assert x_test.shape == (4, 3, 32, 32) and y_test.tolist() == batches["test_batch"][1]


def test_cifar10_missing_files_named(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_2").unlink()
    (tmp_path / "data_batch_5").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "lacks data_batch_2, data_batch_5" in message
    assert "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5" in message
    with pytest.raises(FileNotFoundError, match="lacks test_batch"):
        load_cifar10(tmp_path / "nowhere", split="test")


def test_cifar10_malformed(tmp_path):
    write_cifar(tmp_path)
    bad = {b"data": np.zeros((4, 1024), np.uint8), b"labels": [0, 1, 2, 3]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(bad))
    with pytest.raises(ValueError, match=re.escape("expected b'data' uint8 of shape (N, 3072)")):
        load_cifar10(tmp_path, split="test")
    bad = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(bad))
    with pytest.raises(ValueError, match=re.escape("4 images but b'labels' has shape (2,)")):
        load_cifar10(tmp_path, split="test")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"images": 1}))
    with pytest.raises(ValueError, match="expected a dict with keys b'data' and b'labels'"):
        load_cifar10(tmp_path, split="test")
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 batch pickle"):
        load_cifar10(tmp_path, split="test")


def test_cifar10_refuses_foreign_globals(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": print, b"labels": []}))
    with pytest.raises(ValueError, match=re.escape("refusing to load builtins.print")):
        load_cifar10(tmp_path, split="test")


def test_cifar10_reads_numpy1_pickles(tmp_path):
    """The real files were pickled by NumPy 1, which names ``numpy.core`` (``numpy._core`` in NumPy 2)."""
    write_cifar(tmp_path)
    data = np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072)
    blob = pickle.dumps({b"data": data, b"labels": [3, 4]}, protocol=2)
    blob = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n" in blob
    (tmp_path / "test_batch").write_bytes(blob)
    x, y = load_cifar10(tmp_path, split="test")
    assert y.tolist() == [3, 4]
    np.testing.assert_array_equal(np.round(x.reshape(2, 3072) * 255).astype(np.uint8), data)
