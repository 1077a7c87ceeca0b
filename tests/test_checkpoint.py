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
    with pytest.raises(KeyError, match="holds no optimizer state"):
        checkpoint.load(path, Model(0), SGD(Model(0).parameters(), lr=0.1))
    checkpoint.save(path, model, opt)
    with pytest.raises(ValueError, match="holds SGD state, cannot load it into Adam"):
        checkpoint.load(path, Model(0), Adam(Model(0).parameters()))
    wider = nn.Sequential(nn.Linear(6, 9, rng=np.random.default_rng(0)))
    with pytest.raises(KeyError, match="missing keys"):
        checkpoint.load(path, wider)


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
