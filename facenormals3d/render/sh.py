"""Normalisation constants of the real second-order spherical-harmonics basis (no torch).

The basis and its order are those of :func:`facenormals3d.render.shading.sh_basis` (torch)
and :func:`facenormals3d.render.lighting.sh_basis_np` (numpy): (l, m) = (0,0), (1,-1),
(1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2), with ``Y_00 = C0``, ``Y_1m = C1 (y, z,
x)``, ``Y_2,-2 = C2 xy``, ``Y_2,-1 = C2 yz``, ``Y_20 = C20 (3z^2 - 1)``, ``Y_21 = C2 xz``,
``Y_22 = C22 (x^2 - y^2)``.
"""

C0 = 0.28209479177387814  # 1 / (2 sqrt(pi))
C1 = 0.4886025119029199  # sqrt(3 / (4 pi))
C2 = 1.0925484305920792  # sqrt(15 / (4 pi))
C20 = 0.31539156525252005  # sqrt(5 / (16 pi))
C22 = 0.5462742152960396  # sqrt(15 / (16 pi))
