"""PyTorch: torch.from_dlpack over writable and frozen Blocks (skipped where torch is not
installed), and on the GPU where there is one."""

import gc

import numpy as np
import pytest

import unimem

torch = pytest.importorskip("torch", reason="PyTorch is not installed here")


def test_torch_shares_the_pages(block):
    t = torch.from_dlpack(block)
    assert t.dtype == torch.uint8 and t.numel() == block.nbytes
    assert t.data_ptr() == block.address
    f = t.view(torch.float32)
    f[:2] = torch.tensor([1.0, 2.0])
    assert np.frombuffer(block, dtype=np.float32)[:2].tolist() == [1.0, 2.0]


def test_torch_reads_frozen_weights(block):
    np.frombuffer(block, dtype=np.float32)[:4] = [1, 2, 3, 4]
    gc.collect()
    block.freeze()
    w = torch.from_dlpack(block).view(torch.float32)
    assert w[:4].tolist() == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="PyTorch sees no CUDA device here"
)
def test_a_registered_block_copies_to_the_gpu(block):
    np.frombuffer(block, dtype=np.float32)[:] = 3.0
    gc.collect()
    with block.register_cuda(0):
        t = torch.from_dlpack(block).view(torch.float32)
        assert t.is_pinned()
        g = t.to("cuda", non_blocking=True)
        torch.cuda.synchronize()
        assert float(g.sum()) == 3.0 * t.numel()
