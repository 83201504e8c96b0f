"""``single_torch_thread`` (slicing/threads.py): one torch thread inside the block, the previous count after."""

from __future__ import annotations

import pytest
import torch

from slicing.threads import single_torch_thread


@pytest.fixture()
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_one_thread_inside_and_restored_after(two_threads):
    with single_torch_thread():
        assert torch.get_num_threads() == 1
        with single_torch_thread():  # nests
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_restored_when_the_block_raises(two_threads):
    with pytest.raises(RuntimeError, match="boom"), single_torch_thread():
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
