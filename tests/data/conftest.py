"""Fixtures shared by the synthetic-engine tests."""

from __future__ import annotations

import pytest

from facenormals3d.data.fake_ict import write_fake_ict
from facenormals3d.data.ict import load_ict


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny fake ICT model (:mod:`facenormals3d.data.fake_ict`), parsed without the cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACENORMALS3D_CACHE", str(tmp_path_factory.mktemp("cache")))
        folder = write_fake_ict(tmp_path_factory.mktemp("ict") / "ICT-FaceKit")
        yield load_ict(folder, use_cache=False)
