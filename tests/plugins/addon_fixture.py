"""A tiny ``facenormals3d reconstruct`` face folder following the output contract the
Blender add-on reads (used by the add-on tests in the main .venv and in .venv-blender, and
by the stand-in tool those tests run; needs numpy, which both environments have).

The "face" is a paraboloid cap on a grid, in millimetres, right-handed, y up, looking
along +z, 0.5 m in front of the camera. Per face folder:

mesh.obj + mesh.mtl (``map_Kd texture.png``, ``norm normal_map.png``,
``map_Bump -bm 1 normal_map.png``), texture.png (8-bit RGB), normal_map.png (16-bit RGB,
flat +z = (0.5, 0.5, 1)), optionally albedo.png, blendshapes.npz (the 53 ICT FaceKit
expression names; seeded random deltas), landmarks.npy (478 x 3: landmark i = vertex i)
and landmarks7.npy (7 x 3: vertices :data:`NOW_VERTICES`).
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

GRID = (21, 26)  # columns x rows of vertices: 546 >= 478 landmarks
WIDTH_MM, HEIGHT_MM, DEPTH_MM = 160.0, 200.0, 40.0
NOW_VERTICES = (0, 5, 10, 15, 200, 300, 400)

#: The 53 ICT FaceKit expression names in ICT order (public names, ARKit style).
ICT_EXPRESSIONS = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
    "browOuterUp_R", "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R",
    "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L",
    "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R",
    "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R", "mouthFrown_L",
    "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R",
    "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L",
    "noseSneer_R")


def write_png(path, pixels: np.ndarray) -> None:
    """Write an HxWx3 uint8 or uint16 array as an RGB PNG (stdlib zlib only)."""
    pixels = np.ascontiguousarray(pixels)
    h, w, _ = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    rows = pixels.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).view(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n"
                 + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 2, 0, 0, 0))
                 + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def grid_vertices(width=WIDTH_MM) -> np.ndarray:
    """(V, 3) float64 vertices of the paraboloid face, row-major from the bottom row."""
    nx, ny = GRID
    x = np.linspace(-width / 2, width / 2, nx)
    y = np.linspace(-HEIGHT_MM / 2, HEIGHT_MM / 2, ny)
    xx, yy = np.meshgrid(x, y)
    zz = DEPTH_MM * (1 - (2 * xx / width) ** 2 - (2 * yy / HEIGHT_MM) ** 2) - 500.0
    return np.stack([xx, yy, zz], -1).reshape(-1, 3)


def write_face(folder, width=WIDTH_MM, texture_size=(4, 8), normal_map_size=(8, 8),
               albedo=False, normal_map=True, blendshapes=True, landmarks=True,
               compressed=True, seed=0) -> dict:
    """Write one face folder; return the arrays written (``vertices``, ``deltas``, ...)."""
    os.makedirs(folder, exist_ok=True)
    nx, ny = GRID
    verts = grid_vertices(width)
    uvs = (verts[:, :2] - verts[:, :2].min(0)) / np.ptp(verts[:, :2], 0)
    normals = np.stack([2 * DEPTH_MM * 4 * verts[:, 0] / width ** 2,
                        2 * DEPTH_MM * 4 * verts[:, 1] / HEIGHT_MM ** 2, np.ones(len(verts))], -1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    lines = ["# stand-in facenormals3d mesh: millimetres, y up, z towards the camera",
             "mtllib mesh.mtl", "usemtl face"]
    lines += ["v %.5f %.5f %.5f" % tuple(v) for v in verts]
    lines += ["vt %.6f %.6f" % tuple(t) for t in uvs]
    lines += ["vn %.5f %.5f %.5f" % tuple(n) for n in normals]
    for i in range(ny - 1):
        for j in range(nx - 1):
            a, b, c, d = i * nx + j + 1, i * nx + j + 2, (i + 1) * nx + j + 2, (i + 1) * nx + j + 1
            for tri in ((a, b, c), (a, c, d)):  # counter-clockwise seen from +z (the camera)
                lines.append("f " + " ".join(f"{k}/{k}/{k}" for k in tri))
    with open(os.path.join(folder, "mesh.obj"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    mtl = "newmtl face\nKd 1 1 1\nmap_Kd texture.png\n"
    if normal_map:
        mtl += "norm normal_map.png\nmap_Bump -bm 1 normal_map.png\n"
    with open(os.path.join(folder, "mesh.mtl"), "w") as fh:
        fh.write(mtl)
    h, w = texture_size
    ramp = np.zeros((h, w, 3), np.uint8)
    ramp[..., 0] = np.linspace(0, 255, w)[None, :]
    ramp[..., 1] = np.linspace(0, 255, h)[:, None]
    ramp[..., 2] = 128
    write_png(os.path.join(folder, "texture.png"), ramp)
    if albedo:
        write_png(os.path.join(folder, "albedo.png"), np.full((h, w, 3), 180, np.uint8))
    out = {"vertices": verts}
    if normal_map:
        flat = np.empty(normal_map_size + (3,), np.uint16)
        flat[...] = (32768, 32768, 65535)
        write_png(os.path.join(folder, "normal_map.png"), flat)
    if blendshapes:
        rng = np.random.default_rng(seed)
        deltas = rng.normal(0.0, 2.0, (len(ICT_EXPRESSIONS), len(verts), 3)).astype(np.float32)
        save = np.savez_compressed if compressed else np.savez
        save(os.path.join(folder, "blendshapes.npz"), names=np.array(ICT_EXPRESSIONS),
             deltas=deltas)
        out["deltas"] = deltas
    if landmarks:
        np.save(os.path.join(folder, "landmarks.npy"), verts[:478].astype(np.float64))
        np.save(os.path.join(folder, "landmarks7.npy"), verts[list(NOW_VERTICES)])
    return out


def write_photo_output(out_dir, stem="photo", n_faces=1, **kwargs) -> str:
    """``out_dir/<stem>/face_<k>`` for k < n_faces (face k is narrower as k grows);
    returns the photo folder."""
    folder = os.path.join(out_dir, stem)
    for k in range(n_faces):
        kw = dict(kwargs)
        kw.setdefault("width", WIDTH_MM * (1.0 - 0.2 * k))
        write_face(os.path.join(folder, f"face_{k}"), seed=k, **kw)
    return folder
