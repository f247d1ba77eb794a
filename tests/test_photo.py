"""Every kind of bad or unusual photo file gets decoded right or refused in one clear line."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from facenormals3d.errors import InputError
from facenormals3d.photo import MAX_PIXELS, from_array, load_photo


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width x height`` pixels with almost no data behind it."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
            + chunk(b"IEND", b""))


def _jpeg(tmp_path, name="photo.jpg", size=(64, 48), **save):
    path = tmp_path / name
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path, **save)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.jpg: file not found"):
        load_photo(tmp_path / "nope.jpg")


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.jpg: empty file"):
        load_photo(p)


def test_truncated_jpeg(tmp_path, astronaut):
    full = tmp_path / "full.jpg"
    Image.fromarray(astronaut).save(full, quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:4000])
    with pytest.raises(InputError, match=r"cut\.jpg: cannot decode image"):
        load_photo(cut)


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n")
    with pytest.raises(InputError, match=r"notes\.jpg: not a readable image"):
        load_photo(p)


def test_one_pixel_image(tmp_path):
    p = tmp_path / "dot.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(p)
    with pytest.raises(InputError, match=r"dot\.png: image is only 1x1 pixels"):
        load_photo(p)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(30000, 30000))
    with pytest.raises(InputError, match=r"bomb\.png: image is .*above the limit of 100 megapixels"):
        load_photo(p)
    assert 30000 * 30000 > MAX_PIXELS


def test_grayscale_becomes_rgb(tmp_path):
    p = tmp_path / "gray.png"
    Image.fromarray(np.full((40, 50), 77, np.uint8)).save(p)
    px = load_photo(p).pixels
    assert px.shape == (40, 50, 3) and px.dtype == np.uint8 and np.all(px == 77)


def test_16bit_grayscale_keeps_brightness(tmp_path):
    p = tmp_path / "deep.png"
    Image.fromarray(np.full((40, 50), 65535 // 2, np.uint16)).save(p)
    px = load_photo(p).pixels
    assert px.shape == (40, 50, 3) and abs(int(px[0, 0, 0]) - 127) <= 1


def test_16bit_rgb_array():
    arr = np.full((40, 50, 3), 65535, np.uint16)
    assert np.all(from_array(arr).pixels == 255)


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :25, 3] = 255  # left half opaque red, right half transparent
    p = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(p)
    px = load_photo(p).pixels
    assert tuple(px[0, 0]) == (255, 0, 0) and tuple(px[0, 49]) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(p)  # pure red in CMYK
    px = load_photo(p).pixels
    assert px.shape == (48, 64, 3)
    assert px[..., 0].mean() > 200 and px[..., 1].mean() < 60


def test_exif_orientation_is_honoured(tmp_path):
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, :10] = 255  # white stripe on the left of the stored pixels
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rotated.jpg"
    img.save(p, exif=exif, quality=95)
    px = load_photo(p).pixels
    assert px.shape == (80, 40, 3)  # upright: portrait
    assert px[:10].mean() > 200 and px[-10:].mean() < 50  # the stripe is now at the top


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        load_photo(tmp_path)


def test_plain_jpeg_loads(tmp_path):
    assert load_photo(_jpeg(tmp_path)).pixels.shape == (48, 64, 3)


def test_large_header_under_pillows_guard_is_refused_by_our_limit(tmp_path):
    # 12000 x 10000 = 120 MP: above our 100 MP limit, below Pillow's own bomb guard.
    p = tmp_path / "big.png"
    p.write_bytes(_png_header_only(12000, 10000))
    with pytest.raises(InputError, match=r"big\.png: image is 12000x10000 = 120 megapixels, above the limit"):
        load_photo(p)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_fast_jpeg_path_matches_pillows_decode_and_orientation(tmp_path, astronaut, orientation):
    # RGB JPEGs are decoded by OpenCV (less memory); Pillow's decode and exif_transpose
    # are the reference, for every EXIF orientation. A 60 x 40 crop: not square, so a
    # wrong transpose changes the shape.
    from PIL import ImageOps

    from facenormals3d.photo import _decode_jpeg

    img = Image.fromarray(astronaut[:40, :60])
    exif = img.getexif()
    exif[0x0112] = orientation
    p = tmp_path / f"o{orientation}.jpg"
    img.save(p, exif=exif, quality=90)
    with Image.open(p) as opened:
        assert _decode_jpeg(p, opened) is not None  # the fast path is the one under test
        reference = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    got = load_photo(p).pixels
    assert got.shape == reference.shape
    assert np.abs(got.astype(int) - reference).max() <= 1
