"""Preview pictures of meshes with PyTorch3D, and labelled contact sheets.

:func:`render_mesh` rasterises a triangle mesh given in our frame (mm, x right, y up, z
towards the viewer; see :mod:`facenormals3d.raster` for the view and the PyTorch3D
axis flip) with an orthographic camera that frames it automatically, then shades the pixels
itself from the rasteriser's fragments:

* ``"grey"``: light grey clay, Lambert shading from one light fixed to the camera
  (slightly above and left of the view direction, :data:`LIGHT_DIR`) plus ambient;
* ``"colors"``: interpolated per-vertex colours (unlit unless ``lit=True``);
* ``"texture"``: a texture image sampled at interpolated UVs (unlit unless ``lit=True``).

Faces seen from behind (their normal, from the counter-clockwise winding, points away from
the camera) are drawn in :data:`BACKFACE_RGB`, so an inside-out mesh is obvious at a glance.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from facenormals3d.raster import OrthoView, frame_mesh, interpolate, rasterize, rasterize_views  # noqa: F401
from facenormals3d.surface import vertex_normals

#: Light direction in view space (towards the light): a head-mounted key light.
LIGHT_DIR = (-0.3, 0.4, 1.0)
#: Ambient and diffuse weights of the lit shading.
AMBIENT, DIFFUSE = 0.18, 0.82
#: Albedo of the grey clay.
GREY_ALBEDO = 0.82
#: Colour (0-1) of back faces.
BACKFACE_RGB = (0.35, 0.22, 0.22)

SHADINGS = ("grey", "colors", "texture")


def _check_mesh(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"vertices must be a non-empty V x 3 array, got shape {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"faces must be a non-empty F x 3 array, got shape {f.shape}")
    f = f.astype(np.int64)
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"face indices out of range [0, {len(v)})")
    return v, f


def _as_unit_rgb(colors: np.ndarray, n: int, name: str) -> np.ndarray:
    c = np.asarray(colors)
    if c.ndim != 2 or c.shape[0] != n or c.shape[1] not in (3, 4):
        raise ValueError(f"{name} must be {n} x 3, got shape {c.shape}")
    c = c[:, :3]
    return c.astype(np.float32) / 255.0 if np.issubdtype(c.dtype, np.integer) else c.astype(np.float32)


def render_mesh(vertices: np.ndarray, faces: np.ndarray, *, colors: np.ndarray | None = None,
                texture: np.ndarray | None = None, uvs: np.ndarray | None = None,
                shading: str | None = None, lit: bool | None = None, yaw_deg: float = 0.0,
                pitch_deg: float = 0.0, size: int = 512,
                background: Sequence[float] = (1.0, 1.0, 1.0), view: OrthoView | None = None,
                device: str = "cpu", rasterizer: str = "auto") -> np.ndarray:
    """Render a mesh to an ``size x size x 3`` uint8 picture.

    Args:
        vertices: ``V x 3`` float, mm, our frame (x right, y up, z towards the viewer).
        faces: ``F x 3`` int, counter-clockwise seen from the outside.
        colors: ``V x 3`` per-vertex RGB, float in [0, 1] or uint8.
        texture: ``H x W x 3`` image (uint8 or float [0, 1]), row 0 = top; needs ``uvs``.
        uvs: ``V x 2`` texture coordinates, (0, 0) = bottom-left of ``texture`` (OBJ style),
            or ``F x 3 x 2`` per triangle corner (UV layouts with seams).
        shading: ``"grey"``, ``"colors"`` or ``"texture"``; default: texture if given, else
            colours if given, else grey.
        lit: apply Lambert lighting; default True for grey, False otherwise.
        yaw_deg, pitch_deg: camera direction (see :func:`facenormals3d.raster.frame_mesh`).
        size: image side in pixels.
        background: RGB in [0, 1].
        view: use this framing instead of fitting the mesh (e.g. to share it across panels).
        device: torch device for rasterisation.
        rasterizer: ``"auto"``, ``"pytorch3d"`` or ``"open3d"`` (see
            :func:`facenormals3d.raster.rasterize`).

    Several pictures of one mesh: :func:`rasterize_views` once, then :func:`shade` per picture.
    """
    v, f = _check_mesh(vertices, faces)
    if view is None:
        view = frame_mesh(v, yaw_deg=yaw_deg, pitch_deg=pitch_deg, size=size)
    fragments = rasterize(v, f, view, device, rasterizer)
    return shade(v, f, fragments, view, colors=colors, texture=texture, uvs=uvs, shading=shading,
                 lit=lit, background=background)


def rasterize_front_faces(vertices: np.ndarray, faces: np.ndarray, views: Sequence[OrthoView]) -> list:
    """PyTorch3D fragments of several views of one closed, outward-wound mesh (a fitted
    head), each from only the faces that face its camera (:meth:`OrthoView.facing` > 0).

    Returns ``(pix_to_face, bary)`` per view, as :func:`rasterize_views` with
    ``"pytorch3d"``, with face indices into ``faces``. Where the full mesh would show a
    face from behind (through a hole, e.g. into the neck; an inside-out mesh everywhere)
    these fragments show what lies behind it instead; on the fitted heads of the shared
    photos (5 heads x 3 preview views at 320 px) that was 1 pixel in 1.5 M.

    The CPU rasteriser's time grows with the faces it is given (~5 us each), and about half
    of a head faces away from any view. Three preview views of a fitted head, per face
    (2026-12-06, 2 loaded cores, interleaved): 0.28 s from the front faces, 0.43 s from
    all faces, 0.36 s with the exact hidden-face culling by ray casting used before (whose
    open3d import also cost the preview process ~0.17 GB).
    """
    import torch

    v, f = _check_mesh(vertices, faces)
    out = []
    for view in views:
        keep = np.flatnonzero(view.facing(v, f) > 0)
        p2f, bary = rasterize_views(v, f[keep], [view], rasterizer="pytorch3d")[0]
        p2f = p2f.numpy()
        out.append((torch.from_numpy(np.where(p2f >= 0, keep[np.maximum(p2f, 0)], -1)), bary))
    return out


def shade(vertices: np.ndarray, faces: np.ndarray, fragments, view: OrthoView, *,
          colors: np.ndarray | None = None, texture: np.ndarray | None = None,
          uvs: np.ndarray | None = None, shading: str | None = None, lit: bool | None = None,
          background: Sequence[float] = (1.0, 1.0, 1.0),
          vertex_normals_: np.ndarray | None = None) -> np.ndarray:
    """Shade one view's ``fragments`` (``(pix_to_face, bary)`` from
    :func:`facenormals3d.raster.rasterize`) into an ``H x W x 3`` uint8 picture.

    Arguments as in :func:`render_mesh`; ``vertex_normals_`` (``V x 3``) saves recomputing
    them for several pictures of one mesh. Works on the covered pixels only, in numpy.
    """
    v, f = _check_mesh(vertices, faces)
    if shading is None:
        shading = "texture" if texture is not None else "colors" if colors is not None else "grey"
    if shading not in SHADINGS:
        raise ValueError(f"shading must be one of {SHADINGS}, got {shading!r}")
    if lit is None:
        lit = shading == "grey"
    p2f = fragments[0].cpu().numpy()
    h, w = p2f.shape
    pix = np.flatnonzero(p2f.reshape(-1) >= 0)
    face = p2f.reshape(-1)[pix]
    bary = fragments[1].cpu().numpy().reshape(-1, 3)[pix].astype(np.float32)
    corners = f[face]

    def interp(per_vertex: np.ndarray) -> np.ndarray:
        return interpolate(np.asarray(per_vertex, np.float32), corners, bary)

    if shading == "grey":
        rgb = np.full((len(pix), 3), GREY_ALBEDO, np.float32)
    elif shading == "colors":
        if colors is None:
            raise ValueError("shading='colors' needs colors (V x 3)")
        rgb = interp(_as_unit_rgb(colors, len(v), "colors"))
    else:
        rgb = _sample_texture(texture, uvs, len(v), face, bary, interp)
    if lit:
        vn = vertex_normals(v, f) if vertex_normals_ is None else vertex_normals_
        n = interp(np.asarray(vn) @ view.rotation.T)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        light = np.asarray(LIGHT_DIR, np.float32) / np.linalg.norm(LIGHT_DIR)
        lambert = np.clip(n @ light, 0.0, None)
        rgb = rgb * (AMBIENT + DIFFUSE * lambert)[:, None]
    # Faces seen from behind (normal from the winding points away) get the back-face colour.
    rgb[view.facing(v, f)[face] < 0] = BACKFACE_RGB
    out = np.empty((h * w, 3), np.float32)
    out[:] = np.asarray([float(c) for c in background], np.float32)
    out[pix] = rgb
    return (np.clip(out, 0, 1) * 255.0 + 0.5).astype(np.uint8).reshape(h, w, 3)


def _sample_texture(texture, uvs, n_vertices, face, bary, interp) -> np.ndarray:
    """Texture colours (``N x 3`` float32 in [0, 1]) at the covered pixels, bilinear,
    clamped at the texture's border."""
    from facenormals3d.mesh.atlas import sample_points

    if texture is None or uvs is None:
        raise ValueError("shading='texture' needs texture (H x W x 3) and uvs (V x 2)")
    uv = np.asarray(uvs, dtype=np.float32)
    if uv.ndim == 3:  # per corner: blend the pixel's face's own corners
        uv_pix = interpolate(uv.reshape(-1, 2), 3 * face[:, None] + np.arange(3), bary)
    elif uv.shape != (n_vertices, 2):
        raise ValueError(f"uvs must be {n_vertices} x 2 or F x 3 x 2, got shape {uv.shape}")
    else:
        uv_pix = interp(uv)
    tex = np.asarray(texture)
    if tex.ndim != 3 or tex.shape[2] < 3:
        raise ValueError(f"texture must be H x W x 3, got shape {tex.shape}")
    tex = tex[..., :3].astype(np.float32) / (255.0 if np.issubdtype(tex.dtype, np.integer) else 1.0)
    th, tw = tex.shape[:2]
    # OBJ v = 0 is the bottom row; texel centres at +0.5.
    xy = np.stack([uv_pix[:, 0] * tw, (1.0 - uv_pix[:, 1]) * th], axis=1)
    return sample_points(np.ascontiguousarray(tex), xy)


def contact_sheet(images: Sequence[np.ndarray], labels: Sequence[str] | None = None, *,
                  columns: int | None = None, pad: int = 8, label_px: int = 16,
                  background: int = 255) -> np.ndarray:
    """Lay out ``H_i x W_i x 3`` uint8 panels in a grid with a caption above each one.

    Panels keep their size; each grid cell is as large as the largest panel. ``columns``
    defaults to all panels in one row (up to 6 per row).
    """
    from facenormals3d.render.colormap import draw_text

    if not images:
        raise ValueError("contact_sheet needs at least one image")
    panels = []
    for img in images:
        a = np.asarray(img)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.dtype != np.uint8:
            a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
        panels.append(a[..., :3])
    labels = list(labels) if labels is not None else [""] * len(panels)
    if len(labels) != len(panels):
        raise ValueError(f"{len(labels)} labels for {len(panels)} images")
    columns = columns or min(len(panels), 6)
    rows = -(-len(panels) // columns)
    cell_h = max(p.shape[0] for p in panels)
    cell_w = max(p.shape[1] for p in panels)
    cap = label_px + 6 if any(labels) else 0
    sheet = np.full((pad + rows * (cap + cell_h + pad), pad + columns * (cell_w + pad), 3),
                    background, dtype=np.uint8)
    for k, (panel, label) in enumerate(zip(panels, labels)):
        r, c = divmod(k, columns)
        y0, x0 = pad + r * (cap + cell_h + pad), pad + c * (cell_w + pad)
        sheet[y0 + cap:y0 + cap + panel.shape[0], x0:x0 + panel.shape[1]] = panel
        if label:
            sheet = draw_text(sheet, label, (x0, y0), px=label_px)
    return sheet
