"""Training the cross-modal network: the loop (:mod:`facenormals3d.training.train`), its
settings (``config``), data streams (``data``), step (``step``) and checkpoints
(``checkpoint``), validation on held-out data and its sample grids (``validation``), and
the prior normals computed on every training image by the same front end as at inference
(:mod:`facenormals3d.training.prior`)."""
