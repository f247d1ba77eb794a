"""Where the normal network runs: in this process, or in a helper process.

:class:`LocalNetwork` holds the model here. :class:`RemoteNetwork` asks a helper process
(:class:`facenormals3d.overlap.BackgroundProcess`) whose warm-up ran :func:`load_in_helper`:
the process that reads one photo then never imports torch itself (~1 s of its cold start);
the helper imports torch and loads the weights on the other core meanwhile. Both give the
same normals bit for bit (the network runs on the same number of threads; tested).

Frames: the crop and the normals are the pipeline's (:mod:`facenormals3d.conventions`):
``S x S x 3`` uint8 or float crop, ``S x S x 3`` camera-space unit normals.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import numpy as np

from facenormals3d.model.config import ModelConfig


class LocalNetwork:
    """The network in this process, on ``device`` (a resolved torch device string), CPU
    work on ``threads`` threads (:func:`facenormals3d.device.torch_threads`)."""

    def __init__(self, path: Path, device: str, threads: int):
        from facenormals3d.model.weights import load_weights

        self.device = device
        self.threads = threads
        self.model = load_weights(path, device=device)
        self.cfg: ModelConfig = self.model.cfg

    def predict(self, crop: np.ndarray, prior: np.ndarray | None, flip_average: bool
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """Normals of one crop: ``(S x S x 3 float32, S x S float32 confidence weight in [0, 1]
        or None when the network has no confidence output)``. ``prior``: ``S x S x 3`` normals
        (NaN off the face) for a prior-conditioned network, else None."""
        import torch

        from facenormals3d.model.infer import confidence_weight, predict_normals, predict_normals_confidence

        coarse_in = None
        if self.cfg.coarse_normals:
            coarse_in = torch.from_numpy(np.nan_to_num(prior).transpose(2, 0, 1)[None].copy())

        def run():
            if self.cfg.confidence:
                n, log_kappa = predict_normals_confidence(self.model, crop[None], coarse_in,
                                                          flip_average=flip_average)
                return n[0], confidence_weight(log_kappa[0, 0]).numpy()
            return predict_normals(self.model, crop[None], coarse_in, flip_average=flip_average)[0], None

        if self.device == "cpu":
            from facenormals3d.device import torch_threads

            with torch_threads(self.threads):
                n, conf = run()
        else:
            n, conf = run()
        return n.permute(1, 2, 0).numpy().astype(np.float32), conf

    def submit(self, crop: np.ndarray, prior: np.ndarray | None, flip_average: bool) -> Future:
        """:meth:`predict`, computed now: a finished future (the same call as
        :meth:`RemoteNetwork.submit`)."""
        from facenormals3d.overlap import finished

        return finished(self.predict, crop, prior, flip_average)


class RemoteNetwork:
    """The network in a helper ``process`` whose warm-up ran :func:`load_in_helper` (jobs run
    in order there, so the first :meth:`predict` waits for the load). ``cfg``: the weights'
    config, read here from the sidecar."""

    def __init__(self, process, cfg: ModelConfig):
        self.process = process
        self.cfg = cfg

    def submit(self, crop: np.ndarray, prior: np.ndarray | None, flip_average: bool) -> Future:
        """:meth:`LocalNetwork.predict` in the helper, queued as urgent (behind the load and
        earlier predictions, ahead of queued previews): a future of its result."""
        return self.process.submit(_predict_in_helper, crop, prior, flip_average, urgent=True)


#: The helper process's network (:func:`load_in_helper`). Empty in every other process.
_HELPER: dict = {}


def load_in_helper(path: Path, device: str, threads: int) -> str:
    """In a helper process: resolve ``device`` (auto/cpu/cuda), load the network; returns
    the device it runs on."""
    from facenormals3d.device import resolve_device

    resolved = resolve_device(device)
    _HELPER["network"] = LocalNetwork(path, resolved, threads)
    return resolved


def _predict_in_helper(crop, prior, flip_average):
    return _HELPER["network"].predict(crop, prior, flip_average)
