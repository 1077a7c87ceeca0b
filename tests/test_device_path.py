"""The one switch between the CPU and the GPU algorithms: ``refqt.backend.device_path``."""

import numpy as np
import pytest

from refqt.backend import device_path, emulate_device, get_backend


def test_numpy_takes_the_cpu_path_unless_emulating():
    x = np.zeros(3)
    assert device_path(x) is False
    with emulate_device():
        assert device_path(x) is True
        with emulate_device(False):
            assert device_path(x) is False
        assert device_path(x) is True
    assert device_path(x) is False


def test_switch_restored_after_an_exception():
    with pytest.raises(RuntimeError), emulate_device():
        raise RuntimeError("boom")
    assert device_path(np.zeros(1)) is False


def test_array_api_strict_never_takes_the_device_path():
    pytest.importorskip("array_api_strict")
    a = get_backend("array_api_strict").asarray([1.0, 2.0])
    assert type(a).__module__.startswith("array_api_strict")
    with emulate_device():
        assert device_path(a) is False
