"""Large PNGs and TIFFs -> a small working image, decoded a few rows at a time and reduced as
they arrive.

Pillow decodes a PNG or a TIFF whole: a 4096x4096 RGBA picture is a 64 MiB frame before anything
can be reduced. libvips (pyvips) decodes it sequentially, row after row (a TIFF a strip or a row
of tiles at a time), keeping only the last few hundred rows, so the frame never exists. Each
strip of rows is box-averaged here, whole pixels at a time, as Pillow's `Image.reduce` does in
`decode.shrink`: the same rounding, colour kept, and (for transparent images) alpha-weighted
colour, so a picture gives the same working image whichever decoder read it.
"""

from __future__ import annotations

import numpy as np
import pyvips
from PIL import Image

pyvips.cache_set_max(0)  # nothing is decoded twice, and a cached operation would keep its pixels
pyvips.concurrency_set(1)  # the server already decodes on many threads; one worker each is enough

LOADER_ROWS = 640  # rows libvips's loaders keep in memory (measured: 512, plus slack)
WIDENED_BYTES = 16  # per pixel of a strip while it is reduced: 4 channels of 32-bit sums
ORIENTATION = "orientation"  # libvips's name for the EXIF orientation it read from the header
COLOURS = ("srgb", "b-w", "rgb16", "grey16")  # reduced here as Pillow would; not CMYK, Lab, float


def open_png(data: bytes) -> pyvips.Image:
    """Reads only the header; pixels are decoded when rows are fetched, top to bottom.

    Read through a source over `data` itself: loading from a buffer would copy the upload.
    """
    return pyvips.Image.pngload_source(
        pyvips.Source.new_from_memory(data), access="sequential", fail_on="error"
    )


def open_tiff(data: bytes) -> pyvips.Image:
    """The first page's header, as `open_png`."""
    return pyvips.Image.tiffload_source(
        pyvips.Source.new_from_memory(data), access="sequential", fail_on="error"
    )


def open_scaled_webp(data: bytes, scale: float) -> pyvips.Image:
    """A WEBP decoded by libwebp straight at `scale` of its size: its rescaler takes the rows as
    they are decoded, so the full-size frame never exists (4 MiB for a 12-megapixel photo without
    transparency, where Pillow holds 211 MiB). With transparency it keeps the whole alpha plane,
    so only opaque WEBPs come this way."""
    return pyvips.Image.webpload_source(
        pyvips.Source.new_from_memory(data), access="sequential", fail_on="error", scale=scale
    )


def to_pillow(source: pyvips.Image) -> Image.Image:
    """A small 8-bit RGB or grey libvips image, decoded now, as a Pillow image."""
    pixels = np.frombuffer(source.write_to_memory(), np.uint8).reshape(
        source.height, source.width, source.bands
    )
    return Image.fromarray(pixels, "RGB") if source.bands == 3 else Image.fromarray(pixels[..., 0], "L")


def streamable(source: pyvips.Image) -> bool:
    return source.format in ("uchar", "ushort") and source.interpretation in COLOURS


def held_bytes(source: pyvips.Image, strip_bytes: int, chunk_rows: int = 0, chunk_bytes: int = 0) -> int:
    """What decoding `source` holds at most: the loader's rows, the rows and compressed bytes of
    the TIFF strip or tile decompressed at once (if any), and one strip being reduced."""
    row = source.width * source.bands * (2 if source.format == "ushort" else 1)
    return min(source.height, LOADER_ROWS + chunk_rows) * row + chunk_bytes + strip_bytes


def orientation(source: pyvips.Image) -> int | None:
    return source.get(ORIENTATION) if source.get_typeof(ORIENTATION) != 0 else None


def reduce_rows(source: pyvips.Image, factor: int, strip_bytes: int) -> Image.Image:
    """`source` box-averaged by `factor`: RGBA if it has alpha, RGB if it has colour, I for 16-bit
    grey, else L.

    Rows are fetched in strips of a whole number of `factor` rows, each strip reduced before
    the next is decoded.
    """
    width, height = source.width, source.height
    dtype = np.uint16 if source.format == "ushort" else np.uint8
    rows = factor * max(1, strip_bytes // (WIDENED_BYTES * width * factor))
    region = pyvips.Region.new(source)
    reduced = []
    for top in range(0, height, rows):
        count = min(rows, height - top)
        strip = np.frombuffer(region.fetch(0, top, width, count), dtype).reshape(count, width, source.bands)
        reduced.append(reduce_strip(strip, factor))
    pixels = np.concatenate(reduced)
    if pixels.ndim == 3:
        return Image.fromarray(pixels, "RGBA" if pixels.shape[2] == 4 else "RGB")
    if pixels.dtype == np.uint16:  # 16-bit grey
        return Image.fromarray(pixels.astype(np.int32), "I")
    return Image.fromarray(pixels, "L")


def reduce_strip(strip: np.ndarray, factor: int) -> np.ndarray:
    """(rows, width, bands) -> (rows / factor, width / factor[, 3 or 4]), partial blocks at the edges.

    Pillow keeps 8 bits of 16-bit colour (the high byte) and 16 bits of 16-bit grey; so here.
    """
    bands = strip.shape[2]
    if strip.dtype == np.uint16 and bands > 1:
        strip = (strip >> 8).astype(np.uint8)
    counts = block_counts(strip.shape[:2], factor)
    if bands in (2, 4):
        return reduce_with_alpha(strip, factor, counts)
    if bands == 3:
        return rounded_divide(block_sums(strip, factor), counts[..., None]).astype(np.uint8)
    return rounded_divide(block_sums(strip[..., 0], factor), counts).astype(strip.dtype)


def reduce_with_alpha(strip: np.ndarray, factor: int, counts: np.ndarray) -> np.ndarray:
    """RGBA; colour averaged weighted by alpha (Pillow reduces premultiplied colour), so the
    colour of fully transparent pixels never bleeds into the strokes beside them."""
    alpha = strip[..., -1:]
    colour_sums = block_sums(np.multiply(strip[..., :-1], alpha, dtype=np.uint16), factor)
    alpha_sums = block_sums(alpha, factor)
    colour = rounded_divide(colour_sums, np.maximum(alpha_sums, 1))
    if colour.shape[-1] == 1:  # grey and alpha
        colour = np.repeat(colour, 3, axis=-1)
    alpha = rounded_divide(alpha_sums, counts[..., None])
    return np.concatenate([colour, alpha], axis=-1).astype(np.uint8)


def block_sums(plane: np.ndarray, factor: int) -> np.ndarray:
    """Sums over factor x factor blocks of the first two axes (zeros beyond the edges)."""
    rows, cols = plane.shape[:2]
    down, across = -(-rows // factor), -(-cols // factor)
    padding = ((0, down * factor - rows), (0, across * factor - cols)) + ((0, 0),) * (plane.ndim - 2)
    plane = np.pad(plane, padding) if any(after for _, after in padding) else plane
    largest = factor * min(factor, rows) * int(np.iinfo(plane.dtype).max)
    wide = np.uint32 if largest < 2**32 else np.uint64
    columns = plane.reshape(down, factor, *plane.shape[1:]).sum(axis=1, dtype=wide)
    return columns.reshape(down, across, factor, *plane.shape[2:]).sum(axis=2)


def block_counts(shape: tuple[int, int], factor: int) -> np.ndarray:
    """How many real pixels each block of `block_sums` holds (fewer at the right and bottom)."""
    rows, cols = (np.minimum(factor, n - np.arange(0, n, factor)) for n in shape)
    return np.outer(rows, cols).astype(np.uint32)


def rounded_divide(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return (sums + counts // 2) // counts
