"""DLPack: numpy.from_dlpack on every kind of Block, the capsule's lifetime, refusals."""

import gc

import numpy as np
import pytest

import unimem


def test_numpy_sees_the_same_bytes(block):
    assert block.__dlpack_device__() == (1, 0)
    x = np.from_dlpack(block)
    assert x.dtype == np.uint8 and x.shape == (block.nbytes,)
    assert x.flags.writeable
    x.view(np.float32)[:2] = [4.0, 5.0]
    assert np.frombuffer(block, dtype=np.float32)[:2].tolist() == [4.0, 5.0]
    assert x.ctypes.data == block.address


def test_frozen_blocks_export_read_only(block):
    np.frombuffer(block, dtype=np.float32)[0] = 9.0
    gc.collect()
    block.freeze()
    x = np.from_dlpack(block)
    assert not x.flags.writeable
    assert x.view(np.float32)[0] == 9.0


def test_a_capsule_keeps_the_block_and_its_deleter_runs(block):
    cap = block.__dlpack__(max_version=(1, 0))
    assert "dltensor_versioned" in repr(cap)
    with pytest.raises(unimem.BusyError):
        block.freeze()  # the unconsumed capsule holds the Block
    del cap
    gc.collect()
    block.freeze()  # its destructor deleted the tensor


def test_a_consumed_capsule_lives_as_long_as_its_array():
    b = unimem.Block(8192, pin="best_effort")
    x = np.from_dlpack(b)
    x[:4] = [1, 2, 3, 4]
    address = b.address
    del b  # the array keeps the memory mapped
    gc.collect()
    assert x[:4].tolist() == [1, 2, 3, 4] and x.ctypes.data == address
    del x
    gc.collect()


def test_requests_unimem_cannot_honour_are_buffer_errors(block):
    with pytest.raises(BufferError, match="legacy"):
        block.__dlpack__()
    with pytest.raises(BufferError, match="legacy"):
        block.__dlpack__(max_version=(0, 8))
    with pytest.raises(BufferError, match="without a copy"):
        block.__dlpack__(max_version=(1, 0), copy=True)
    with pytest.raises(BufferError, match="kDLCUDAHost"):
        block.__dlpack__(max_version=(1, 0), dl_device=(3, 0))
    cap = block.__dlpack__(max_version=(1, 1), dl_device=(1, 0), copy=False, stream=None)
    del cap
