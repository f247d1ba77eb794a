"""The shipped morphable face model (built from the ICT FaceKit) and its evaluation.

Frame and units: millimetres; model frame x to the subject's left (image right for a
frontal face), y up, z out of the face, so a face with identity rotation looks at the
camera in our camera frame (:mod:`facenormals3d.conventions`).

A face is ``mean + identity @ alpha + expression @ beta`` with identity coefficients
``alpha ~ N(0, 1)`` (the modes are scaled by their standard deviation) and expression
weights ``beta`` in [0, 1] (ICT's 53 ARKit-style blendshapes). The asset holds the head
region a user wants (face, forehead, scalp, ears, neck stub, mouth socket, eye sockets)
and the two eyeballs as separate parts; teeth and tongue are left out.

Texture layout (an atlas twice as wide as tall, u right, v up): the left half is ICT's
face tile (UDIM 1001), the right half its head tile (1002); the eyeballs, which share one
UV tile in ICT, are scaled into two small squares that the head tile leaves free. Every
surface point has one place in the atlas.

The asset is ``assets/face_model.npz``, made by ``facenormals3d build-face-model``
(:mod:`facenormals3d.fit.build`); ``assets/ICT-FaceKit.LICENSE`` is its licence.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenormals3d.errors import FaceNormalsError

#: The asset shipped with the package.
DEFAULT_FACE_MODEL = Path(__file__).resolve().parents[2] / "assets" / "face_model.npz"
#: Format tag written into and checked on the asset.
FORMAT = "facenormals3d-face-model-v1"

#: Part labels of :attr:`FaceModel.triangle_parts`.
PART_FACE = 0
"""Narrow face area (forehead to chin, cheek to cheek)."""
PART_FACE_OUTER = 1
"""Temples, sides of the face, under the jaw."""
PART_HEAD = 2
"""Scalp, ears and neck stub."""
PART_MOUTH = 3
"""Mouth socket (inside of the lips and cheeks)."""
PART_EYE_SOCKET = 4
PART_EYEBALL = 5
PART_NAMES = ("face", "face_outer", "head", "mouth", "eye_socket", "eyeball")
#: The face region: the parts a face's normals are predicted and scored on (forehead to chin,
#: cheek to cheek, the eyes; the region of the synthetic ground truth's mask,
#: :mod:`facenormals3d.data.synth`).
FACE_REGION_PARTS = (PART_FACE, PART_EYE_SOCKET, PART_EYEBALL)


@dataclass
class FaceModel:
    """A linear face model with landmark correspondences (all arrays read-only in use)."""

    mean: np.ndarray
    """``V x 3`` float32 mean (ICT neutral) vertices, mm, model frame."""
    identity: np.ndarray
    """``K x V x 3`` float32 identity modes, mm per unit coefficient."""
    expression: np.ndarray
    """``E x V x 3`` float32 blendshape offsets at weight 1, mm."""
    expression_names: tuple[str, ...]
    """The ``E`` blendshape names (ICT / ARKit style, ``_L``/``_R`` = subject's left/right)."""
    triangles: np.ndarray
    """``T x 3`` int32, counter-clockwise seen from outside."""
    triangle_uvs: np.ndarray
    """``T x 3 x 2`` float32 atlas coordinates of each corner (u right, v up, [0, 1])."""
    triangle_parts: np.ndarray
    """``T`` int8 part labels (``PART_*``)."""
    ibug68: np.ndarray
    """``68`` int32 vertex indices of the iBUG-68 landmarks (ICT's own definition)."""
    mediapipe_triangles: np.ndarray
    """``478`` int32: the triangle each mediapipe landmark lies on."""
    mediapipe_barycentric: np.ndarray
    """``478 x 3`` float32 barycentric weights of each mediapipe landmark on its triangle."""
    mirror: np.ndarray
    """``V`` int32: the vertex at the mirror position (x -> -x) of each vertex."""
    info: dict
    """Provenance: source, mode counts, correspondence statistics."""

    @property
    def n_vertices(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.identity.shape[0])

    @property
    def n_expression(self) -> int:
        return int(self.expression.shape[0])

    def shape(self, alpha: np.ndarray | None = None, beta: np.ndarray | None = None) -> np.ndarray:
        """``V x 3`` float64 vertices (model frame, mm) for coefficients ``alpha`` (K) and ``beta`` (E)."""
        mean, identity, expression = self._bases64
        v = mean.copy()
        if alpha is not None and np.any(alpha):
            v = v + np.dot(np.asarray(alpha, np.float64), identity).reshape(v.shape)
        if beta is not None and np.any(beta):
            v = v + np.dot(np.asarray(beta, np.float64), expression).reshape(v.shape)
        return v

    @functools.cached_property
    def _bases64(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The mean (``V x 3``), identity (``K x 3V``) and expression (``E x 3V``) bases in
        float64, made once (~40 MB): converting the float32 bases on every :meth:`shape`
        call was most of its time (12 ms -> 4 ms a call; the fit calls it ~12 times a face)."""
        return (self.mean.astype(np.float64), self.identity.reshape(self.n_identity, -1).astype(np.float64),
                self.expression.reshape(self.n_expression, -1).astype(np.float64))

    def face_region(self, triangle: np.ndarray, grow: int = 0) -> np.ndarray:
        """Bool, the shape of ``triangle``: where the seen triangle (a pixel's front-most
        one, -1 for none, e.g. from :func:`~facenormals3d.raster.orthographic_hits`) is
        part of the face region (:data:`FACE_REGION_PARTS`). ``grow``: pixels (of an ``S x
        S`` image) to widen it by, staying on the model's surface (``triangle`` >= 0) and off
        the mouth's inside (:data:`PART_MOUTH`: an open mouth stays open)."""
        t = np.asarray(triangle)
        seen = t >= 0
        region = seen & np.isin(self.triangle_parts, FACE_REGION_PARTS)[t]
        if grow > 0:
            import cv2

            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
            onto = seen & (self.triangle_parts != PART_MOUTH)[t]  # never across an open mouth
            region = region | (onto & cv2.dilate(region.view(np.uint8), kernel).astype(bool))
        return region

    def landmark_points(self, vertices: np.ndarray) -> np.ndarray:
        """The 478 mediapipe landmarks on a surface of this topology: ``478 x 3`` (same frame)."""
        corners = np.asarray(vertices)[self.triangles[self.mediapipe_triangles]]  # 478 x 3 x 3
        return np.einsum("lc,lcd->ld", self.mediapipe_barycentric.astype(np.float64), corners)

    def landmark_basis(self, basis: np.ndarray) -> np.ndarray:
        """Per-landmark rows of a ``M x V x 3`` basis: ``M x 478 x 3`` (barycentric mix)."""
        corners = basis[:, self.triangles[self.mediapipe_triangles]]  # M x 478 x 3 x 3
        return np.einsum("lc,mlcd->mld", self.mediapipe_barycentric.astype(np.float64), corners)


def load_face_model(path: str | Path | None = None) -> FaceModel:
    """Read the face-model asset (default: the shipped one). Raises FaceNormalsError when unusable."""
    p = Path(path) if path else DEFAULT_FACE_MODEL
    if not p.is_file():
        hint = ("the shipped face model is missing; rebuild it with `facenormals3d build-face-model "
                "--ict-dir DIR`") if path is None else "face model file not found"
        raise FaceNormalsError(f"{p}: {hint}")
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        if str(data.get("format")) != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        import json

        return FaceModel(
            mean=data["mean"].astype(np.float32),
            identity=data["identity"].astype(np.float32),
            expression=data["expression"].astype(np.float32),
            expression_names=tuple(str(s) for s in data["expression_names"]),
            triangles=data["triangles"].astype(np.int32),
            triangle_uvs=data["triangle_uvs"].astype(np.float32),
            triangle_parts=data["triangle_parts"].astype(np.int8),
            ibug68=data["ibug68"].astype(np.int32),
            mediapipe_triangles=data["mediapipe_triangles"].astype(np.int32),
            mediapipe_barycentric=data["mediapipe_barycentric"].astype(np.float32),
            mirror=data["mirror"].astype(np.int32),
            info=json.loads(str(data["info"])),
        )
    except (KeyError, ValueError, OSError) as err:
        raise FaceNormalsError(f"{p}: not a usable face model ({err})") from None


def save_face_model(model: FaceModel, path: str | Path) -> Path:
    """Write ``model`` as a compressed npz (bases in float16: < 0.01 mm rounding)."""
    import json

    from facenormals3d.outputs import atomic_write

    arrays = dict(format=np.array(FORMAT), mean=model.mean.astype(np.float32),
                  identity=model.identity.astype(np.float16), expression=model.expression.astype(np.float16),
                  expression_names=np.array(model.expression_names), triangles=model.triangles,
                  triangle_uvs=model.triangle_uvs.astype(np.float32), triangle_parts=model.triangle_parts,
                  ibug68=model.ibug68, mediapipe_triangles=model.mediapipe_triangles,
                  mediapipe_barycentric=model.mediapipe_barycentric.astype(np.float32),
                  mirror=model.mirror, info=np.array(json.dumps(model.info)))
    return atomic_write(Path(path), lambda p: np.savez_compressed(p, **arrays))
