"""register_cuda: a context manager with a device pointer where there is a GPU; a clear
UnsupportedError where there is none."""

import numpy as np
import pytest

import unimem


def _cuda_available() -> bool:
    probe = unimem.Block(4096, pin="best_effort")
    try:
        probe.register_cuda(0).release()
        return True
    except unimem.UnsupportedError:
        return False


HAS_CUDA = _cuda_available()


@pytest.mark.skipif(HAS_CUDA, reason="a CUDA driver is present")
def test_without_a_driver_registration_is_unsupported(block):
    with pytest.raises(unimem.UnsupportedError) as e:
        block.register_cuda(0)
    assert e.value.kind == "unsupported" and "libcuda" in str(e.value)


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA driver on this machine")
def test_registration_is_a_context_manager_with_a_device_pointer(block):
    with block.register_cuda(0) as reg:
        assert reg.is_active and reg.device_ptr != 0 and reg.nbytes == block.nbytes
        assert reg.__dlpack_device__() == (3, 0)
        x = np.from_dlpack(reg)  # kDLCUDAHost: host memory NumPy can read
        assert x.ctypes.data == block.address
        with pytest.raises(unimem.BusyError):
            block.freeze()
        del x
    assert not reg.is_active
    with pytest.raises(ValueError, match="released"):
        reg.__dlpack__(max_version=(1, 0))
