"""Checkpoints: resuming is bit-for-bit, writes are atomic, mismatches are clear errors."""

import os

import numpy as np
import pytest

from refqt import checkpoint, nn, ops
from refqt.optim import SGD, Adam
from refqt.tensor import Tensor


class Model(nn.Module):
    """Linear → BatchNorm → ReLU → Dropout → Linear: parameters, buffers and randomness."""

    def __init__(self, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.fc1 = nn.Linear(6, 8, rng=rng)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.25, np.random.default_rng(seed + 1))
        self.fc2 = nn.Linear(8, 3, rng=rng)

    def forward(self, x):
        return self.fc2(self.drop(ops.relu(self.bn(self.fc1(x)))))


def train(model, opt, data_rng, steps):
    for _ in range(steps):
        x = data_rng.standard_normal((16, 6)).astype(np.float32)
        y = data_rng.integers(0, 3, size=16)
        opt.zero_grad()
        ops.cross_entropy(model(Tensor(x)), y).backward()
        opt.step()


def test_resume_is_bit_for_bit(tmp_path):
    # Uninterrupted: 6 steps.
    model, data_rng = Model(0), np.random.default_rng(7)
    opt = Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
    train(model, opt, data_rng, 6)
    reference = model.state_dict()

    # Interrupted: 3 steps, checkpoint (with every generator's state), 3 more in fresh objects.
    model, data_rng = Model(0), np.random.default_rng(7)
    opt = Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
    train(model, opt, data_rng, 3)
    path = tmp_path / "ckpt.npz"
    extra = {
        "step": 3,
        "data_rng": data_rng.bit_generator.state,
        "drop_rng": model.drop.rng.bit_generator.state,
    }
    checkpoint.save(path, model, opt, extra=extra)

    model2 = Model(123)  # different initial weights: all must come from the file
    opt2 = Adam(model2.parameters(), lr=1.0)
    got = checkpoint.load(path, model2, opt2)
    assert got["step"] == 3 and opt2.steps == 3 and opt2.lr == 0.01
    data_rng2 = np.random.default_rng()
    data_rng2.bit_generator.state = got["data_rng"]
    model2.drop.rng.bit_generator.state = got["drop_rng"]
    train(model2, opt2, data_rng2, 3)

    resumed = model2.state_dict()
    assert list(resumed) == list(reference)
    for key, value in reference.items():
        np.testing.assert_array_equal(resumed[key], value, err_msg=key)


def test_model_only_checkpoint_and_no_temp_files_left(tmp_path):
    model = Model(0)
    path = tmp_path / "model.npz"
    checkpoint.save(path, model)
    checkpoint.save(path, model, extra={"note": "overwritten in place"})
    assert os.listdir(tmp_path) == ["model.npz"]
    other = Model(5)
    assert checkpoint.load(path, other) == {"note": "overwritten in place"}
    np.testing.assert_array_equal(other.fc1.weight.numpy(), model.fc1.weight.numpy())
    with np.load(path, allow_pickle=False) as f:  # plain arrays, no pickle
        assert "model/bn.running_mean" in f.files


def test_failed_save_keeps_the_old_file(tmp_path):
    model = Model(0)
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, model, extra={"epoch": 1})
    with pytest.raises(TypeError, match="extra is not JSON-serialisable"):
        checkpoint.save(path, model, extra={"epoch": object()})
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert checkpoint.load(path, Model(0)) == {"epoch": 1}


def test_load_mismatches_are_clear(tmp_path):
    model = Model(0)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, model)
    with pytest.raises(checkpoint.CheckpointError, match="holds no optimizer state") as info:
        checkpoint.load(path, Model(0), SGD(Model(0).parameters(), lr=0.1))
    assert not info.value.damaged
    checkpoint.save(path, model, opt)
    with pytest.raises(ValueError, match="holds SGD state, cannot load it into Adam"):
        checkpoint.load(path, Model(0), Adam(Model(0).parameters()))
    wider = nn.Sequential(nn.Linear(6, 9, rng=np.random.default_rng(0)))
    with pytest.raises(checkpoint.CheckpointError, match=r"does not fit the model: .*missing keys") as info:
        checkpoint.load(path, wider)
    assert "\n" not in str(info.value) and not info.value.damaged


def _good(tmp_path):
    path = tmp_path / "good.npz"
    checkpoint.save(path, Model(0), extra={"epoch": 1})
    return path


def _truncated(tmp_path):
    path = tmp_path / "ckpt.npz"
    path.write_bytes(_good(tmp_path).read_bytes()[:1000])
    return path


def _pickled(tmp_path):
    path = tmp_path / "ckpt.npz"
    np.save(path.with_suffix(".tmp"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    path.write_bytes(path.with_suffix(".tmp.npy").read_bytes())
    return path


def _pickle_stream(tmp_path):
    import pickle

    path = tmp_path / "ckpt.npz"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    return path


def _object_entry(tmp_path):
    path = tmp_path / "ckpt.npz"
    with open(path, "wb") as f:
        np.savez(f, meta=np.array("{}"), stuff=np.array([object()], dtype=object))
    return path


def _foreign_npz(tmp_path):
    path = tmp_path / "ckpt.npz"
    with open(path, "wb") as f:
        np.savez(f, x=np.zeros(3), y=np.ones(2))
    return path


def _bad_meta(tmp_path):
    path = tmp_path / "ckpt.npz"
    with open(path, "wb") as f:
        np.savez(f, meta=np.array("{not json"), **{"model/w": np.zeros(2)})
    return path


def _npy(tmp_path):
    path = tmp_path / "ckpt.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    return path


def _empty(tmp_path):
    path = tmp_path / "ckpt.npz"
    path.write_bytes(b"")
    return path


def _corrupted_entry(tmp_path):
    """A byte flipped inside an array: the zip's CRC check catches it."""
    path = tmp_path / "ckpt.npz"
    data = bytearray(_good(tmp_path).read_bytes())
    at = data.index(b"model/fc1.weight.npy") + 200  # inside that entry's data
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_truncated, "is truncated or not an .npz archive"),
        (_pickled, "holds pickled Python objects"),
        (_pickle_stream, "holds pickled Python objects"),
        (_object_entry, "holds pickled Python objects"),
        (_foreign_npz, "not a refqt checkpoint (it has no 'meta' entry)"),
        (_bad_meta, "its 'meta' entry is not the expected JSON"),
        (_npy, "is a single .npy array"),
        (_empty, "is truncated or not an .npz archive"),
        (_corrupted_entry, "is damaged: entry 'model/fc1.weight' cannot be read"),
    ],
)
def test_a_damaged_or_foreign_file_is_one_line_without_pickle_advice(tmp_path, make, says):
    path = make(tmp_path)
    model = Model(0)
    before = model.state_dict()
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load(path, model, SGD(model.parameters(), lr=0.1))
    message = str(info.value)
    assert says in message and message.startswith(str(path)) and "\n" not in message
    assert "allow_pickle" not in message and "unsafe" not in message
    assert info.value.damaged
    for key, value in model.state_dict().items():  # nothing was copied into the model
        np.testing.assert_array_equal(value, before[key])


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.npz", Model(0))


def test_checkpoint_file_has_a_normal_mode(tmp_path):
    import os
    import stat

    import numpy as np

    from refqt import checkpoint
    from refqt.nn import Linear

    path = tmp_path / "c.npz"
    checkpoint.save(path, Linear(2, 2, rng=np.random.default_rng(0)))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
