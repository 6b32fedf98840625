"""Uploaded bytes -> a small working image (grey or colour), in memory bounded from the first byte.

The header is checked before any pixel is decoded (format, claimed size), and so is what
decoding will hold: at most `DECODE_BUDGET` bytes of pixels, whatever size the header claims
within the pixel limit. A JPEG is decoded at reduced scale by libjpeg itself (draft mode: 1/2 to
1/8 of each side), so a 12-megapixel photo never exists at full size. Other images Pillow
decodes whole when that fits the budget, then reduces by whole-pixel box averaging
(`Image.reduce`) to at most `WORKING_SIDE` a strip of rows at a time. A PNG or TIFF too large
for that is decoded a few rows at a time by libvips and reduced as the rows arrive (`stream`),
so its full-size frame never exists; an opaque WEBP is decoded by libwebp straight at the working
size. Anything else over the budget (an interlaced PNG, whose rows come in seven passes; a CMYK,
Lab or floating-point TIFF; a transparent WEBP; BMP and GIF, which are decoded whole) is refused
with 413 before decoding.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.errors import ImageTooLarge, InvalidImage, ServiceError, UnsupportedMediaType
from app.imaging import stream

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
WORKING_SIDE = 512  # px: the digit still spans tens of pixels, and every array stays ~1 MB
STRIP_BYTES = 2 << 20  # rows converted and reduced at a time
DECODE_BUDGET = 32 << 20  # bytes of decoded pixels one image may hold at once
MiB = 1 << 20
# Pillow's decoders beyond its frame: WEBP through libwebp's animation decoder (its canvas, the
# previous canvas and the bytes handed to Pillow), TIFF through libtiff (a strip buffer that can
# be the whole image). Measured: 267 MiB for a 4096x4096 RGBA WEBP, 68 MiB for a striped TIFF.
FRAMES_HELD = {"WEBP": 4, "TIFF": 2}
COLOUR_MODES = ("RGB", "CMYK", "YCbCr", "P")  # decoded to RGB; grey and 1-bit to L
STREAMED = {"PNG": stream.open_png, "TIFF": stream.open_tiff}  # libvips loaders that read row by row
COMPRESSION, ROWS_PER_STRIP, STRIP_BYTE_COUNTS, TILE_LENGTH, TILE_BYTE_COUNTS = 259, 278, 279, 323, 325
EXIF_ORIENTATION = 0x0112
TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def decode(data: bytes, max_pixels: int) -> Image.Image:
    """At most `WORKING_SIDE` px a side, upright (EXIF orientation applied)."""
    image = open_checked(data, max_pixels)
    try:
        if image.format == "JPEG":
            image.draft(None, (WORKING_SIDE, WORKING_SIDE))
        if decoded_bytes(image) <= DECODE_BUDGET:
            image.load()  # GIF and TIFF: the first frame
            # read after loading: a PNG's may come after its pixels, and Pillow turns a TIFF
            # upright itself as it loads it (and drops the tag)
            orientation = image.getexif().get(EXIF_ORIENTATION)
            image = shrink(image, WORKING_SIDE)
        else:
            image, orientation = streamed(data, image)
    except ServiceError:
        raise
    except Exception as e:  # the decoders raise many types for corrupt data; all are the client's
        raise InvalidImage(f"the image could not be decoded: {e}") from e
    transpose = TRANSPOSE_FOR_ORIENTATION.get(orientation)
    return image.transpose(transpose) if transpose is not None else image


def decoded_bytes(image: Image.Image) -> int:
    """What Pillow holds to decode `image` whole (after JPEG draft mode has picked its scale)."""
    per_pixel = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    return image.width * image.height * per_pixel * FRAMES_HELD.get(image.format, 1)


def streamed(data: bytes, image: Image.Image) -> tuple[Image.Image, int | None]:
    """A PNG or TIFF too large to decode whole, decoded row by row, or an opaque WEBP decoded at
    the working size; (working image, orientation)."""
    if image.format == "WEBP" and image.mode == "RGB":
        source = stream.open_scaled_webp(data, WORKING_SIDE / max(image.size))
        return shrink(stream.to_pillow(source), WORKING_SIDE), stream.orientation(source)
    if image.format not in STREAMED or image.info.get("interlace"):
        kind = f"{'interlaced ' if image.info.get('interlace') else ''}{image.format}"
        raise over_budget(image, f"a {kind} image is decoded whole, which", decoded_bytes(image))
    source = STREAMED[image.format](data)  # the same header Pillow read: the same size
    if not stream.streamable(source):
        kind = f"{source.interpretation} {source.format} {image.format}"
        raise over_budget(image, f"a {kind} image is decoded whole, which", decoded_bytes(image))
    held = stream.held_bytes(source, STRIP_BYTES, *tiff_chunk(image))
    if held > DECODE_BUDGET:
        raise over_budget(image, "decoding its rows at this width", held)
    factor = -(-max(image.size) // WORKING_SIDE)
    return stream.reduce_rows(source, factor, STRIP_BYTES), stream.orientation(source)


def tiff_chunk(image: Image.Image) -> tuple[int, int]:
    """(rows, compressed bytes) of the largest strip or tile libtiff decompresses at once (it
    reads uncompressed strips a few rows at a time)."""
    tags = image.tag_v2 if image.format == "TIFF" else {}
    if tags.get(COMPRESSION, 1) == 1:
        return 0, 0
    rows = tags.get(TILE_LENGTH) or tags.get(ROWS_PER_STRIP) or image.height
    sizes = tags.get(TILE_BYTE_COUNTS) or tags.get(STRIP_BYTE_COUNTS) or 0
    return min(int(rows), image.height), max(sizes) if isinstance(sizes, tuple) else int(sizes)


def over_budget(image: Image.Image, what: str, needed: int) -> ImageTooLarge:
    width, height = image.size
    return ImageTooLarge(
        f"the image is {width}x{height}: {what} would need {needed / MiB:.0f} MiB, more than the "
        f"{DECODE_BUDGET / MiB:.0f} MiB one image may use; send it smaller, as a JPEG or a plain PNG",
        {"width": width, "height": height, "needed_bytes": needed, "budget_bytes": DECODE_BUDGET},
    )


def open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Reads only the header: refuses what is not an image, an unlisted format or too many pixels."""
    if not data:
        raise InvalidImage("the image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Pillow's own guard, far above ours by default: say the service's limit, not Pillow's
        raise ImageTooLarge(
            f"the image claims more than {Image.MAX_IMAGE_PIXELS} pixels; the limit is {max_pixels}",
            {"max_pixels": max_pixels},
        ) from e
    except UnidentifiedImageError as e:
        raise InvalidImage("the data is not an image Pillow can read") from e
    except Exception as e:  # a header cut short, a text chunk inflating past Pillow's limit...
        raise InvalidImage(f"the image's header could not be read: {e}") from e
    if image.format not in FORMATS:
        raise UnsupportedMediaType(
            f"{image.format} images are not supported; send one of {', '.join(FORMATS)}"
        )
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
            {"width": width, "height": height, "max_pixels": max_pixels},
        )
    return image


def shrink(image: Image.Image, side: int) -> Image.Image:
    """Box-averages whole pixels until the longest side is at most `side`, in a working mode.

    The image is converted and reduced a strip of rows at a time, so that nothing but the
    decoded frame itself ever exists at full size (Pillow's reduce of an RGBA image would make
    a premultiplied copy of all of it).
    """
    factor = -(-max(image.size) // side)
    mode = working_mode(image)
    rows = factor * max(1, STRIP_BYTES // (4 * image.width * factor))
    width, height = -(-image.width // factor), -(-image.height // factor)
    out = Image.new(mode, (width, height))
    for top in range(0, image.height, rows):
        strip = image.crop((0, top, image.width, min(top + rows, image.height))).convert(mode)
        out.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return out


def working_mode(image: Image.Image) -> str:
    """RGBA when there is transparency, I or F for 16-bit and float images, RGB for other colour
    images (coloured ink stands out in one channel more than in grey: `ink.ink_channel`), else L."""
    if has_alpha(image):
        return "RGBA"
    if image.mode.startswith("I") or image.mode == "F":
        return "I" if image.mode != "F" else "F"
    return "RGB" if image.mode in COLOUR_MODES else "L"


def has_alpha(image: Image.Image) -> bool:
    return "A" in image.mode or "a" in image.mode or "transparency" in image.info


def to_grey(image: Image.Image) -> np.ndarray:
    """(H, W) float32 in [0, 1]; transparency composited onto the colour opposite the strokes.

    A canvas export is often black strokes on fully transparent black pixels: dropping the
    alpha channel would give a black square. Compositing onto white when the visible pixels are
    dark (and onto black when they are light) keeps the strokes and lets polarity detection
    treat the result like ink on paper.
    """
    if image.mode.startswith("I"):
        return np.clip(np.asarray(image.convert("I"), dtype=np.float32) / 65535.0, 0.0, 1.0)
    if image.mode == "F":  # a 32-bit float TIFF: NaN or infinity would make every output NaN
        values = np.asarray(image, dtype=np.float32)
        if not np.isfinite(values).all():
            raise InvalidImage("the image has pixel values that are not a number (NaN or infinity)")
        return np.clip(values, 0.0, 1.0)
    if not has_alpha(image):
        return np.asarray(image.convert("L"), dtype=np.float32) / np.float32(255)
    planes = np.asarray(image.convert("RGBA").convert("LA"))  # (H, W, 2) uint8: grey, alpha
    grey = planes[..., 0].astype(np.float32) / np.float32(255)
    alpha = planes[..., 1].astype(np.float32) / np.float32(255)
    if alpha.min() >= 1.0:
        return grey
    strokes = float((grey * alpha).sum() / max(alpha.sum(), 1e-6))
    background = 1.0 if strokes < 0.5 else 0.0
    return grey * alpha + background * (1.0 - alpha)


def to_colour(image: Image.Image) -> np.ndarray | None:
    """(H, W, 3) uint8 for an opaque colour working image, else None (grey, or composited from
    transparency by `to_grey`). Kept in bytes: only the channel the ink is read in, if any,
    becomes float (`ink.ink_channel`)."""
    return np.asarray(image) if image.mode == "RGB" else None
