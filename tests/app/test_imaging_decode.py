"""Decoding in bounded memory: large PNGs and TIFFs streamed row by row read as Pillow reads them
whole, an opaque WEBP is decoded at the working size, and what cannot be decoded within the budget
is refused with 413 before decoding."""

from __future__ import annotations

import importlib
import io

import numpy as np
import pytest
import pyvips
from PIL import Image
from PIL.PngImagePlugin import PngImageFile
from PIL.TiffImagePlugin import TiffImageFile
from PIL.WebPImagePlugin import WebPImageFile

from app.errors import ImageTooLarge, InvalidImage
from app.imaging import Layout, prepare

decoding = importlib.import_module("app.imaging.decode")  # the module, not its `decode` function

MAX_PIXELS = 4096 * 4096
SIZE = (1001, 603)  # reduced by 2, with partial blocks at the right and bottom edges


def canvas(digit: np.ndarray, size: tuple[int, int], background: int) -> np.ndarray:
    """A digit drawn as a canvas exports it, enlarged: black strokes, alpha = ink, transparent
    pixels of `background` colour (what they hide must not leak into the strokes)."""
    ink = np.asarray(Image.fromarray(digit).resize(size, Image.Resampling.BILINEAR))
    rgba = np.full((*ink.shape, 4), background, np.uint8)
    rgba[..., 3] = ink
    rgba[ink > 0, :3] = 0
    return rgba


def encode(image: Image.Image, fmt: str = "PNG", **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def both_ways(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The working image as Pillow decodes it whole, and as it comes streamed: in grey, with the
    colour channels beside it where it has colour."""
    whole = decoding.decode(data, MAX_PIXELS)
    streamed, _ = decoding.streamed(data, decoding.open_checked(data, MAX_PIXELS))
    assert (streamed.mode, streamed.size) == (whole.mode, whole.size)
    return planes(whole), planes(streamed)


def planes(image: Image.Image) -> np.ndarray:
    grey, colour = decoding.to_grey(image), decoding.to_colour(image)
    return grey if colour is None else np.dstack([grey, colour / 255])


def coloured_ink(digit: np.ndarray) -> np.ndarray:
    """A digit in green marker on white, opaque RGB: its colour kept in the working image."""
    ink = canvas(digit, SIZE, 255)[..., 3:].astype(np.float32) / 255
    green = np.array([30, 140, 60], np.float32)
    return np.round(255 - ink * (255 - green)).astype(np.uint8)


def sixteen_bit_rgba(digit: np.ndarray) -> bytes:
    pixels = canvas(digit, SIZE, 255).astype(np.uint16) * 257
    return pyvips.Image.new_from_array(pixels).cast("ushort").copy(interpretation="rgb16").pngsave_buffer()


IMAGES = {
    "canvas, transparent black": lambda d: encode(Image.fromarray(canvas(d, SIZE, 0))),
    "canvas, transparent white": lambda d: encode(Image.fromarray(canvas(d, SIZE, 255))),
    "grey and alpha": lambda d: encode(Image.fromarray(canvas(d, SIZE, 0)).convert("LA")),
    "RGB": lambda d: encode(Image.fromarray(canvas(d, SIZE, 255)[..., :3])),
    "RGB, green ink": lambda d: encode(Image.fromarray(coloured_ink(d))),
    "palette, green ink": lambda d: encode(Image.fromarray(coloured_ink(d)).convert("P")),
    "grey, tRNS": lambda d: encode(Image.fromarray(255 - canvas(d, SIZE, 0)[..., 3]), transparency=255),
    "palette, tRNS": lambda d: encode(
        Image.fromarray(canvas(d, SIZE, 255)).convert("RGB").convert("P"), transparency=0
    ),
    "16-bit grey": lambda d: encode(Image.fromarray(canvas(d, SIZE, 0)[..., 3].astype(np.uint16) * 257)),
    "16-bit RGBA": sixteen_bit_rgba,
    "TIFF, RGB in strips": lambda d: encode(
        Image.fromarray(coloured_ink(d)), "TIFF", compression="tiff_deflate"
    ),
    "TIFF, RGBA in tiles": lambda d: (
        pyvips.Image.new_from_array(canvas(d, SIZE, 0))
        .copy(interpretation="srgb")
        .tiffsave_buffer(tile=True, compression="deflate")
    ),
    "TIFF, 16-bit grey": lambda d: encode(
        Image.fromarray(canvas(d, SIZE, 0)[..., 3].astype(np.uint16) * 257), "TIFF", compression="tiff_lzw"
    ),
}


@pytest.mark.parametrize("kind", list(IMAGES))
def test_a_streamed_png_reads_as_pillow_reads_it_whole(kind: str, digit_image: np.ndarray) -> None:
    whole, streamed = both_ways(IMAGES[kind](digit_image))
    assert np.abs(whole - streamed).max() <= 2 / 255
    assert np.abs(whole - streamed).mean() < 1e-3


def test_a_streamed_png_is_turned_upright_by_its_exif_orientation(digit_image: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8  # turn 90 degrees anticlockwise to display
    stored = encode(Image.fromarray(np.rot90(canvas(digit_image, (600, 1000), 0), k=-1)), exif=exif.tobytes())
    _, orientation = decoding.streamed(stored, decoding.open_checked(stored, MAX_PIXELS))
    assert orientation == 8


def test_an_interlaced_png_is_read_whole_within_the_budget(digit_image: np.ndarray) -> None:
    rgba = canvas(digit_image, (300, 200), 0)
    interlaced = pyvips.Image.new_from_array(rgba).copy(interpretation="srgb").pngsave_buffer(interlace=True)
    assert Image.open(io.BytesIO(interlaced)).info.get("interlace")
    plain = encode(Image.fromarray(rgba))
    grey = decoding.to_grey(decoding.decode(interlaced, MAX_PIXELS))
    assert np.array_equal(grey, decoding.to_grey(decoding.decode(plain, MAX_PIXELS)))


def test_an_opaque_webp_over_the_budget_is_decoded_at_the_working_size(
    digit_image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libwebp scales while it decodes; the digit the model sees is the one Pillow's whole frame gives."""
    data = encode(Image.fromarray(canvas(digit_image, SIZE, 255)[..., :3]), "WEBP", quality=90)
    layout = Layout(28, 20)
    whole = prepare(data, "auto", MAX_PIXELS, layout)
    monkeypatch.setattr(decoding, "DECODE_BUDGET", 64 * 64)
    monkeypatch.setattr(WebPImageFile, "load", lambda self: pytest.fail("Pillow decoded the WEBP whole"))
    assert max(decoding.decode(data, MAX_PIXELS).size) == decoding.WORKING_SIDE
    scaled = prepare(data, "auto", MAX_PIXELS, layout)
    assert np.abs(whole - scaled).mean() < 0.02


@pytest.mark.parametrize("fmt", ["interlaced PNG", "transparent WEBP", "CMYK TIFF"])
def test_what_cannot_be_streamed_over_the_budget_is_refused_before_decoding(
    fmt: str, digit_image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    rgba = canvas(digit_image, (64, 64), 0)
    if fmt == "interlaced PNG":
        data = pyvips.Image.new_from_array(rgba).copy(interpretation="srgb").pngsave_buffer(interlace=True)
    elif fmt == "transparent WEBP":
        data = encode(Image.fromarray(rgba), "WEBP")
    else:
        data = encode(Image.fromarray(rgba).convert("CMYK"), "TIFF")
    monkeypatch.setattr(decoding, "DECODE_BUDGET", 64 * 64 * 4 - 1)
    with pytest.raises(ImageTooLarge, match="decoded whole") as refused:
        decoding.decode(data, MAX_PIXELS)
    assert refused.value.details["budget_bytes"] == 64 * 64 * 4 - 1


def test_a_png_too_wide_to_stream_within_the_budget_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("RGBA", (2000, 20)))
    monkeypatch.setattr(decoding, "DECODE_BUDGET", 100_000)  # less than the frame, and than a strip
    with pytest.raises(ImageTooLarge, match="its rows at this width"):
        decoding.decode(data, MAX_PIXELS)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_a_png_or_tiff_over_the_budget_is_streamed(
    fmt: str, digit_image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = encode(Image.fromarray(canvas(digit_image, (300, 3000), 0)), fmt)  # a 3.6 MB frame
    whole = decoding.to_grey(decoding.decode(data, MAX_PIXELS))
    monkeypatch.setattr(decoding, "DECODE_BUDGET", 3_200_000)  # the loader's rows and a strip fit
    for file_class in (PngImageFile, TiffImageFile):
        monkeypatch.setattr(file_class, "load", lambda image: pytest.fail("Pillow decoded the image whole"))
    assert np.abs(decoding.to_grey(decoding.decode(data, MAX_PIXELS)) - whole).max() <= 2 / 255


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_damaged_streamed_png_is_an_invalid_image(
    damage: str, digit_image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytearray(encode(Image.fromarray(canvas(digit_image, (300, 3000), 0)), compress_level=0))
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    monkeypatch.setattr(decoding, "DECODE_BUDGET", 3_200_000)
    with pytest.raises(InvalidImage, match="could not be decoded"):
        decoding.decode(bytes(data), MAX_PIXELS)


UNDO = {t: t for t in Image.Transpose} | {  # each transpose's inverse
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
}


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP", "JPEG"])
def test_every_exif_orientation_is_applied_once(fmt: str) -> None:
    """Stored turned or mirrored with the tag that says how to show it, the image comes out upright
    (Pillow turns a TIFF upright itself as it loads it: it must not be turned twice)."""
    upright = np.zeros((40, 80), np.uint8)
    upright[:10, :20] = 255  # a bright corner at the top left, nowhere else
    for orientation, transpose in decoding.TRANSPOSE_FOR_ORIENTATION.items():
        exif = Image.Exif()
        exif[decoding.EXIF_ORIENTATION] = orientation
        stored = Image.fromarray(upright).transpose(UNDO[transpose])
        extra = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
        shown = decoding.to_grey(
            decoding.decode(encode(stored, fmt, exif=exif.tobytes(), **extra), MAX_PIXELS)
        )
        assert shown.shape == upright.shape and np.abs(shown * 255 - upright).mean() < 4, orientation
