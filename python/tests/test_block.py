"""unimem.Block: opening, sizes, the buffer protocol, freezing, errors as exceptions."""

import ctypes
import gc

import numpy as np
import pytest

import unimem


def test_open_rounds_to_pages_and_reports(block):
    assert len(block) == block.nbytes == 64 << 10
    small = unimem.Block(1, pin="best_effort")
    assert small.nbytes % 4096 == 0 and small.nbytes >= 4096
    assert block.name == "pytest"
    assert not block.is_frozen and not block.is_read_only
    assert isinstance(block.is_pinned, bool)
    assert block.address % 4096 == 0
    assert "writable" in repr(block)


def test_bytes_are_zero_and_shared_without_a_copy(block):
    a = np.frombuffer(block, dtype=np.float32)
    assert a.size == block.nbytes // 4 and not a.any()
    a[:3] = [1.5, 2.5, 3.5]
    m = memoryview(block)
    assert not m.readonly and m.nbytes == block.nbytes
    assert np.frombuffer(m, dtype=np.float32)[:3].tolist() == [1.5, 2.5, 3.5]
    m[0:4] = b"\x00\x00\x80\x3f"  # 1.0
    assert a[0] == 1.0


def test_bad_arguments_raise_by_kind():
    with pytest.raises(unimem.InvalidInputError) as e:
        unimem.Block(0)
    assert e.value.kind == "invalid input" and e.value.variant == "ZeroSize"
    assert "at least one byte" in str(e.value)
    with pytest.raises(unimem.InvalidInputError, match="249"):
        unimem.Block(4096, pin="best_effort", name="x" * 300)
    with pytest.raises(ValueError, match="best_effort"):
        unimem.Block(4096, pin="sometimes")


def test_exceptions_have_one_base_and_a_class_per_kind():
    kinds = [
        "InvalidInputError", "StaleError", "FullError", "OutOfMemoryError",
        "PinRefusedError", "AccessDeniedError", "BusyError", "RefusedPeerError",
        "DisconnectedError", "UnsupportedError", "OsError",
    ]
    for name in kinds:
        cls = getattr(unimem, name)
        assert issubclass(cls, unimem.MemError) and cls is not unimem.MemError
    assert issubclass(unimem.MemError, Exception)


def test_freeze_needs_the_block_alone_and_then_views_are_read_only(block):
    a = np.frombuffer(block, dtype=np.uint8)
    a[10] = 7
    with pytest.raises(unimem.BusyError, match="views alive") as e:
        block.freeze()
    assert e.value.kind == "busy"
    assert not block.is_frozen  # unchanged, still writable
    a[11] = 8
    del a
    gc.collect()
    assert block.freeze() is block
    assert block.is_frozen and block.is_read_only and "frozen" in repr(block)
    m = memoryview(block)
    assert m.readonly and m[10] == 7 and m[11] == 8
    with pytest.raises(TypeError):
        m[0] = 1  # read-only memoryview
    ro = np.frombuffer(block, dtype=np.uint8)
    assert not ro.flags.writeable
    block.freeze()  # again: a no-op
    # A writable buffer of frozen memory is refused by the buffer protocol.
    with pytest.raises(TypeError, match="not writable"):
        (ctypes.c_char * 4).from_buffer(block)


def test_pinning_refused_is_its_own_kind():
    # Raising RLIMIT_MEMLOCK is out of reach in a test process; the class is what matters:
    # a LockRefused maps to PinRefusedError, which callers catch to retry unpinned.
    assert issubclass(unimem.PinRefusedError, unimem.MemError)
