"""Normal integration: normal map (+ mask, prior depth, camera) -> depth.

A general geometry library (numpy, scipy, pyamg; no torch, no faces, no file I/O).

Conventions
    * Normals: camera space, x right, y up, z towards the camera (OpenGL); unit length is
      not required; NaN marks an unknown normal.
    * Image grid: row ``r`` goes down, column ``c`` right; pixel centres at ``c + 0.5``,
      ``r + 0.5`` (the :class:`Camera` principal point uses the same coordinates).
    * Orthographic (no camera): the result is a height towards the camera (nearer =
      larger) in units of ``settings.pixel_size`` per pixel.
    * Perspective (camera given): the result is the positive distance along the optical
      axis; :func:`depth_to_points` gives OpenGL points ``(X, Y, Z = -depth)``.
    * Without a prior, each 4-connected component of the mask has mean height 0
      (orthographic) or geometric-mean depth ``settings.reference_depth`` (perspective);
      with a prior the prior fixes the level (see :mod:`integration.integrate`).

Methods (``IntegrationSettings.method``)
    ``poisson`` masked least squares (CG + pyamg, or ``solver="direct"`` SuperLU);
    ``dct`` DCT Poisson on the bounding box; ``fusion`` prior depth + normals in one
    least-squares system (Nehab et al. 2005 style); ``bilateral`` discontinuity-preserving
    reweighting. The system itself is documented in :mod:`integration.system`.

Example::

    from integration import integrate, IntegrationSettings
    result = integrate(normals, mask, settings=IntegrationSettings(pixel_size=0.5))
    result.depth  # H x W, NaN outside the mask
"""

from integration.camera import Camera, depth_to_points, height_to_points
from integration.gradients import normals_from_height
from integration.integrate import integrate
from integration.settings import IntegrationResult, IntegrationSettings

__all__ = ["Camera", "IntegrationResult", "IntegrationSettings", "depth_to_points",
           "height_to_points", "integrate", "normals_from_height"]
