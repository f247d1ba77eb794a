"""Training the cross-modal network: the loop, checkpoints and data streams
(:mod:`facenormals3d.training.train`) and the prior normals computed on every training
image by the same front end as at inference (:mod:`facenormals3d.training.prior`)."""
