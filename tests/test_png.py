"""The PNG encoder: lossless round trips through independent readers, and the file's structure."""

import io
import struct
import zlib

import numpy as np
import pytest

from facenormals3d.png import encode_png


def _images():
    rng = np.random.default_rng(3)
    yield rng.integers(0, 256, (7, 5), dtype=np.uint8)
    yield rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)
    yield rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    yield rng.integers(0, 256, (4, 6, 4), dtype=np.uint8)
    yield rng.integers(0, 65536, (5, 8, 3), dtype=np.uint16)
    # smooth content, as the textures are: long runs after filtering
    yield np.broadcast_to(np.arange(300, dtype=np.uint8)[None, :, None], (20, 300, 3)).copy()


@pytest.mark.parametrize("image", list(_images()), ids=lambda a: f"{a.dtype}{a.shape}")
def test_readers_get_the_same_pixels_back(image):
    import cv2
    from PIL import Image

    data = encode_png(image)
    if image.dtype == np.uint8:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()  # chunk CRCs
        with Image.open(io.BytesIO(data)) as im:
            np.testing.assert_array_equal(np.asarray(im), image)
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image.ndim == 3:  # OpenCV orders channels BGR(A)
        back = back[..., [2, 1, 0, 3][:image.shape[2]]]
    assert back.dtype == image.dtype
    np.testing.assert_array_equal(back.reshape(image.shape), image)


def _unfilter_reference(rows: bytes, h: int, stride: int, pixel_bytes: int) -> np.ndarray:
    """PNG's filters undone byte by byte (spec section 9), the slow way."""
    out = np.zeros((h, stride), np.int64)
    pos = 0
    for r in range(h):
        kind = rows[pos]
        line = rows[pos + 1:pos + 1 + stride]
        pos += 1 + stride
        for c in range(stride):
            left = out[r, c - pixel_bytes] if c >= pixel_bytes else 0
            up = out[r - 1, c] if r else 0
            assert kind in (0, 1, 2), kind
            pred = {0: 0, 1: left, 2: up}[kind]
            out[r, c] = (line[c] + pred) % 256
    return out.astype(np.uint8)


@pytest.mark.parametrize("monkeypatched", [False, True], ids=["one band", "three bands"])
def test_the_file_is_signature_ihdr_idat_iend_with_sub_filtered_rows(monkeypatched, monkeypatch):
    import facenormals3d.png

    if monkeypatched:
        monkeypatch.setattr(facenormals3d.png, "BAND_BYTES", 2 * 4 * 6)  # two rows of 4 x 3 x 2 bytes
    image = np.random.default_rng(0).integers(0, 65536, (6, 4, 3), dtype=np.uint16)
    data = encode_png(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + n
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and set(kinds[1:-1]) == {b"IDAT"}
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (4, 6, 16, 2, 0, 0, 0)
    rows = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    raw = _unfilter_reference(rows, 6, 4 * 6, 6)
    np.testing.assert_array_equal(raw.view(">u2").reshape(6, 4, 3), image)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8),
                                 np.zeros((0, 4, 3), np.uint8), np.zeros(5, np.uint8)])
def test_unsupported_images_are_refused(bad):
    with pytest.raises(ValueError):
        encode_png(bad)
