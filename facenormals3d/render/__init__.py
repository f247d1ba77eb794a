"""Rendering for people and for the fit: previews and contact sheets, SH shading, the
shading-consistency refinement, the light and albedo fit, relighting.

Visibility itself (rasterisation, ray casting, camera types, barycentric interpolation) is
in :mod:`facenormals3d.raster`, below every stage, so that earlier stages can use it too."""
