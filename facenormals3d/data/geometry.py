"""Face shape, head pose and camera for one synthetic sample.

Frames
    Model frame: the ICT frame in mm (x to the subject's left = image right when the
    face looks at the camera, y up, z out of the face).
    Camera frame: OpenGL (x right, y up, z toward the camera; the camera looks along -z),
    mm. ``X_cam = R @ (X_model - pivot) + position``.
    Crop pixels: continuous (u right, v down), the top-left pixel centre is (0.5, 0.5).
    A camera point projects to ``u = f * X / -Z + cx``, ``v = -f * Y / -Z + cy``.

The crop follows :func:`facenormals3d.face.crop.crop_from_points` on the projected ICT
landmarks (:data:`~facenormals3d.face.topology.CROP_POINTS_IBUG68`) in a virtual full
photo (focal 1000 px, principal point at 0), then a small random jitter (scale and
shift) as augmentation. The crop is a similarity of the photo, so it folds into the
intrinsics (``f``, ``cx``, ``cy``) and rays are cast for the crop pixels only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from facenormals3d.face.crop import CropSettings, crop_from_points
from facenormals3d.face.topology import CROP_POINTS_IBUG68

#: Focal length of the virtual full photo the crop rule runs on (pixels).
PHOTO_FOCAL_PX = 1000.0


@dataclass(frozen=True)
class GeometrySettings:
    """Ranges the shape, pose and camera are drawn from."""

    identity_scale: float = 1.0
    """Standard deviation of the identity coefficients (1 = the model's own spread)."""
    max_expressions: int = 4
    """At most this many blendshapes are active at once."""
    neutral_rate: float = 0.2
    """Fraction of samples with a neutral expression."""
    yaw_deg: float = 70.0
    """Largest |yaw| (turning left/right)."""
    pitch_deg: float = 30.0
    """Largest |pitch| (nodding)."""
    roll_deg: float = 20.0
    """Largest |roll| (tilting)."""
    distance_mm: tuple[float, float] = (350.0, 3000.0)
    """Camera-to-head-centre distance, log-uniform: selfie to long lens."""
    off_axis_deg: float = 12.0
    """Largest angle between the optical axis and the head direction (face off-centre in the photo)."""
    crop_scale_jitter: float = 0.05
    """Relative crop size jitter (+-)."""
    crop_shift_jitter: float = 0.03
    """Crop shift jitter as a fraction of the crop size (+-)."""


@dataclass
class Camera:
    """Pose of the head in the camera and the crop's pinhole intrinsics."""

    rotation: np.ndarray
    """3 x 3 float64, model -> camera rotation."""
    pivot: np.ndarray
    """3 float64, model-frame point the head turns about (mm)."""
    position: np.ndarray
    """3 float64, where the pivot sits in the camera frame (mm)."""
    focal: float
    """Crop focal length in pixels."""
    cx: float
    """Crop principal point u (pixels)."""
    cy: float
    """Crop principal point v (pixels)."""
    size: int
    """Crop side in pixels."""

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Model-frame ``N x 3`` -> camera-frame ``N x 3`` (float64)."""
        return (np.asarray(points, dtype=np.float64) - self.pivot) @ self.rotation.T + self.position

    def to_model(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame ``N x 3`` -> model-frame ``N x 3`` (float64), the inverse of :meth:`to_camera`."""
        return (np.asarray(points_cam, dtype=np.float64) - self.position) @ self.rotation + self.pivot

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame ``N x 3`` -> crop pixel ``N x 2`` (u, v)."""
        p = np.asarray(points_cam, dtype=np.float64)
        w = -p[:, 2]
        return np.stack([self.focal * p[:, 0] / w + self.cx, -self.focal * p[:, 1] / w + self.cy], axis=1)

    def ray_directions(self) -> np.ndarray:
        """``size x size x 3`` float32 ray directions through pixel centres, z = -1.

        With z = -1 the ray parameter of a hit equals its depth (distance along the axis).
        """
        c = np.arange(self.size, dtype=np.float64) + 0.5
        u, v = np.meshgrid(c, c)
        d = np.stack([(u - self.cx) / self.focal, -(v - self.cy) / self.focal, -np.ones_like(u)], axis=-1)
        return d.astype(np.float32)

    def image_rotation(self) -> np.ndarray:
        """:func:`image_camera_rotation` of this camera's crop."""
        return image_camera_rotation(self.focal, self.cx, self.cy, self.size)

    def to_dict(self) -> dict:
        return {"rotation": self.rotation.tolist(), "pivot": self.pivot.tolist(),
                "position": self.position.tolist(), "focal": self.focal, "cx": self.cx,
                "cy": self.cy, "size": self.size}


def image_camera_rotation(focal: float, cx: float, cy: float, size: int) -> np.ndarray:
    """``3 x 3`` rotation from the crop's own camera frame to the render camera's (its
    columns: the own camera's x, y, z axes in the render camera's frame).

    The crop is cut from a larger photo, so its principal point ``(cx, cy)`` (crop pixels)
    lies off its centre, often outside it: the render camera looks past the face, by up to
    ~17 deg (:attr:`GeometrySettings.off_axis_deg` on both axes). The crop's own camera is
    the render camera turned about its centre, by the smallest turn, until its optical axis
    passes through the crop's centre: the camera of a photo that is just this crop. A
    method that sees only the crop cannot tell the two apart (the crop spans ~8 deg of the
    render camera's view, so the turn's keystone is a fraction of a pixel), so the ground
    truth it is held to is in this frame.
    """
    half = size / 2.0
    axis = np.array([(half - cx) / focal, -(half - cy) / focal, -1.0])  # through the crop's centre
    z = -axis / np.linalg.norm(axis)  # towards the camera, as +z is
    v = np.cross([0.0, 0.0, 1.0], z)
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + z[2])  # Rodrigues: turns +z onto z


def rotation_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """3 x 3 head rotation: roll (about z) after pitch (about x) after yaw (about y).

    Positive yaw turns the face toward image right, positive pitch tilts it down (chin
    toward the chest), positive roll turns it counter-clockwise as seen by the camera.
    """
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def sample_identity(identity_id: int, n_modes: int, scale: float = 1.0) -> np.ndarray:
    """``n_modes`` float32 identity coefficients ~ N(0, scale^2), a function of the id only."""
    rng = np.random.default_rng(np.random.SeedSequence([int(identity_id), 0x1D]))
    return (rng.standard_normal(n_modes) * scale).astype(np.float32)


def sample_expression(rng: np.random.Generator, names: tuple[str, ...],
                      settings: GeometrySettings) -> np.ndarray:
    """Sparse blendshape weights in [0, 1] (``len(names)`` float32).

    Left/right pairs (``*_L``/``*_R``) are often driven together, as faces do.
    """
    w = np.zeros(len(names), dtype=np.float32)
    if not names or rng.random() < settings.neutral_rate:
        return w
    index = {n: i for i, n in enumerate(names)}
    for _ in range(int(rng.integers(1, settings.max_expressions + 1))):
        i = int(rng.integers(len(names)))
        value = float(rng.random() ** 0.7)
        w[i] = max(w[i], value)
        name = names[i]
        twin = name[:-1] + ("R" if name.endswith("_L") else "L") if name[-2:] in ("_L", "_R") else None
        if twin in index and rng.random() < 0.65:
            w[index[twin]] = max(w[index[twin]], value * float(rng.uniform(0.7, 1.0)))
    return w


def deform(neutral: np.ndarray, identity_basis: np.ndarray, expression_basis: np.ndarray,
           identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """Vertices ``N x 3`` float32 of the face with these coefficients (model frame, mm)."""
    k = identity_basis.shape[0]
    v = neutral + (identity @ identity_basis.reshape(k, -1)).reshape(neutral.shape)
    active = np.flatnonzero(expression)
    if len(active):
        e = expression_basis[active].reshape(len(active), -1)
        v = v + (expression[active] @ e).reshape(neutral.shape)
    return v.astype(np.float32, copy=False)


def triangle_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """``T x 3`` float32 triangle normals with length = 2 x area (counter-clockwise = outside)."""
    v = np.asarray(vertices, dtype=np.float32)
    p0 = np.take(v, triangles[:, 0], axis=0)
    e1 = np.take(v, triangles[:, 1], axis=0) - p0
    e2 = np.take(v, triangles[:, 2], axis=0) - p0
    # The cross product written out: np.cross on N x 3 arrays is several times slower.
    return np.stack([e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1], e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2],
                     e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]], axis=1)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray, face_normals: np.ndarray | None = None,
                   incidence=None) -> np.ndarray:
    """Area-weighted unit vertex normals ``N x 3`` float32 (counter-clockwise = outside).

    ``incidence`` (from :func:`vertex_incidence`) turns the sum over each vertex's
    triangles into one sparse product; without it the sums use ``np.bincount``.
    """
    v = np.asarray(vertices, dtype=np.float32)
    t = triangles
    fn = triangle_normals(v, t) if face_normals is None else face_normals
    if incidence is not None:
        n = np.asarray(incidence @ fn, dtype=np.float32)
    else:
        n = np.zeros_like(v)
        for k in range(3):
            for c in range(3):
                n[:, c] += np.bincount(t[:, k], weights=fn[:, c], minlength=len(v)).astype(np.float32)
    length = np.sqrt(np.einsum("ij,ij->i", n, n))[:, None]
    return n / np.maximum(length, 1e-12)


def vertex_incidence(n_vertices: int, triangles: np.ndarray):
    """Sparse ``N x T`` float32 matrix with a 1 where vertex n is a corner of triangle t."""
    from scipy import sparse

    rows = triangles.ravel()
    cols = np.repeat(np.arange(len(triangles)), 3)
    return sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                             shape=(n_vertices, len(triangles)))


def visible_triangles(points_cam: np.ndarray, triangles: np.ndarray, face_normals: np.ndarray,
                      camera: "Camera", margin_px: float = 8.0, slack: float = 0.1) -> np.ndarray:
    """Indices of the triangles that can show in the crop: facing the camera and in view.

    Culling the back of the head and everything outside the crop shrinks the ray-casting
    scene (its build time grows with the triangle count). A triangle stays when
    ``cos(normal, to-camera) > -slack`` and not all three corners are beyond the same crop
    edge (plus ``margin_px``). Shadow rays then only see these triangles, which, for a
    closed head, still includes a camera-facing surface on every occluder in view.
    """
    p = np.asarray(points_cam, dtype=np.float32)
    w = -p[:, 2]
    u = camera.focal * p[:, 0] / w + camera.cx
    v = -camera.focal * p[:, 1] / w + camera.cy
    lo, hi = -margin_px, camera.size + margin_px
    # One bit per crop edge a vertex lies beyond; a triangle is out if its corners share a bit.
    code = ((u < lo).astype(np.uint8) | ((u > hi).astype(np.uint8) << 1)
            | ((v < lo).astype(np.uint8) << 2) | ((v > hi).astype(np.uint8) << 3))
    culled = (code[triangles[:, 0]] & code[triangles[:, 1]] & code[triangles[:, 2]]) != 0
    corner = np.take(p, triangles[:, 0], axis=0)  # any corner will do for the facing test, given the slack
    facing = -np.einsum("ij,ij->i", face_normals, corner)
    norms = np.sqrt(np.einsum("ij,ij->i", face_normals, face_normals) * np.einsum("ij,ij->i", corner, corner))
    return np.flatnonzero(~culled & (facing > -slack * norms))


def head_pivot(neutral: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Model-frame point the head turns about: centre of the mesh box, at eye height."""
    lo, hi = neutral.min(axis=0), neutral.max(axis=0)
    centre = 0.5 * (lo + hi)
    return np.array([centre[0], float(neutral[landmarks, 1].mean()), centre[2]], dtype=np.float64)


def sample_pose(rng: np.random.Generator, s: GeometrySettings) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees: mostly near frontal, the full yaw range uniformly often."""
    if rng.random() < 0.4:
        yaw = rng.uniform(-s.yaw_deg, s.yaw_deg)
    else:
        yaw = float(np.clip(rng.normal(0.0, s.yaw_deg / 3.0), -s.yaw_deg, s.yaw_deg))
    pitch = float(np.clip(rng.normal(0.0, s.pitch_deg / 2.5), -s.pitch_deg, s.pitch_deg))
    roll = float(np.clip(rng.normal(0.0, s.roll_deg / 2.5), -s.roll_deg, s.roll_deg))
    return float(yaw), pitch, roll


def make_camera(rng: np.random.Generator, s: GeometrySettings, landmarks_model: np.ndarray,
                pivot: np.ndarray, pose: tuple[float, float, float],
                crop: CropSettings = CropSettings(), margin: float = 1.0) -> tuple[Camera, dict]:
    """Place the head, frame the crop from its landmarks, jitter it.

    Args:
        landmarks_model: ``68 x 3`` landmark positions of this face (model frame).
        pivot: model-frame point the head turns about.
        pose: (yaw, pitch, roll) in degrees.
        crop: the crop rule; ``crop.size`` is the rendered image's side.
        margin: the image shows this many times the rule's square around its centre (the
            jitter is in units of that square, so a margin only adds a border).

    Returns:
        The camera and a dict of the drawn parameters (for the sample record).
    """
    rotation = rotation_matrix(*pose)
    lo, hi = np.log(s.distance_mm[0]), np.log(s.distance_mm[1])
    distance = float(np.exp(rng.uniform(lo, hi)))
    ax, ay = np.radians(rng.uniform(-s.off_axis_deg, s.off_axis_deg, size=2))
    position = np.array([distance * np.tan(ax), distance * np.tan(ay), -distance])
    cam = Camera(rotation=rotation, pivot=pivot, position=position, focal=PHOTO_FOCAL_PX,
                 cx=0.0, cy=0.0, size=crop.size)
    photo_pts = cam.project(cam.to_camera(landmarks_model))
    transform = crop_from_points(photo_pts[list(CROP_POINTS_IBUG68)], replace(crop, scale=crop.scale * margin))
    k = float(1.0 + rng.uniform(-s.crop_scale_jitter, s.crop_scale_jitter))
    shift = rng.uniform(-s.crop_shift_jitter, s.crop_shift_jitter, size=2) * crop.size / margin
    half = crop.size / 2.0
    # Jitter = scale by k about the crop centre, then shift; composed after the crop rule.
    jitter = np.array([[k, 0.0, (1 - k) * half + shift[0]], [0.0, k, (1 - k) * half + shift[1]]])
    m = np.hstack([jitter[:, :2] @ transform.matrix[:, :2], jitter[:, :2] @ transform.matrix[:, 2:3] + jitter[:, 2:3]])
    cam.focal = float(m[0, 0] * PHOTO_FOCAL_PX)
    cam.cx, cam.cy = float(m[0, 2]), float(m[1, 2])
    params = {"yaw": pose[0], "pitch": pose[1], "roll": pose[2], "distance_mm": distance,
              "off_axis_deg": [float(np.degrees(ax)), float(np.degrees(ay))],
              "photo_focal_px": PHOTO_FOCAL_PX, "photo_to_crop": m.tolist(),
              "crop_jitter": {"scale": k, "shift_px": shift.tolist()}}
    return cam, params
