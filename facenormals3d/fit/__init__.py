"""Morphable face model fitting: the shipped ICT-derived model, landmark correspondence, fits.

:mod:`facenormals3d.fit.model` (the asset and its evaluation), :mod:`facenormals3d.fit.build`
(making the asset from an ICT FaceKit folder), :mod:`facenormals3d.fit.landmarks` (pose,
identity and expression from the 478 landmarks), :mod:`facenormals3d.fit.dense` (the
refinement against depth integrated from the predicted normals).
"""
