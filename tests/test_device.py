"""Torch thread count for a block of work."""

import pytest


def test_torch_threads_are_set_for_the_block_and_restored():
    import torch

    from facenormals3d.device import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        with torch_threads(0):
            pass
