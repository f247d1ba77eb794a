"""facenormals3d: face photos to detailed 3D face meshes.

Coordinate conventions are documented once, in :mod:`facenormals3d.conventions`.
"""

__version__ = "0.1.0"
