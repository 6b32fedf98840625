"""What preprocessing one image costs: time for a 12-megapixel JPEG, for the patterns that give
the ink search the most to do and for a large PNG, peak memory for the worst cases.

Memory is the process's peak resident set (Linux VmHWM, reset before each case through
/proc/self/clear_refs) minus its resident set just before, measured in a fresh subprocess per
case, so it counts Pillow's and OpenCV's C buffers that tracemalloc cannot see. "Eight in one
request" sends eight 4096x4096 transparent PNGs to POST /v1/predict of the service with the
shipped weights and compares the peak with the service's resting memory. The worst cases are
the largest image of each kind the decoder accepts at the default pixel limit (4096x4096): PNGs
and TIFFs streamed by libvips, and what Pillow decodes whole up to `DECODE_BUDGET` (an
interlaced PNG, a WEBP, a 16-bit grey PNG).

    python bench/preprocess_cost.py
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
CASES = {
    "4096x4096 transparent PNG (RGBA)": lambda: transparent_png(),
    "4096x4096 noisy PNG (RGBA)": lambda: noisy_png(),
    "4096x4096 16-bit RGBA PNG": lambda: rgba16_png(),
    "4096x4096 noisy TIFF (RGBA, deflate)": lambda: noisy_tiff(),
    "4096x4096 transparent PNG (palette)": lambda: palette_png(),
    "4096x4096 16-bit grey PNG": lambda: grey16_png(),
    "2896x2896 interlaced PNG (RGBA)": lambda: interlaced_png(),
    # the largest opaque colour PNG Pillow decodes whole (a 32 MiB frame), read in colour
    "2896x2896 colour photo as PNG (RGB, decoded whole)": lambda: photo(
        "PNG", (2896, 2896), compress_level=1
    ),
    "1448x1448 WEBP (RGBA)": lambda: webp(),
    "12-megapixel WEBP photo (opaque)": lambda: photo("WEBP", quality=80),
    "12-megapixel JPEG photo": lambda: photo("JPEG", quality=92),
}


def transparent_png() -> bytes:
    return encode(Image.new("RGBA", (4096, 4096), (0, 0, 0, 0)), "PNG")


def noisy_pixels(side: int) -> np.ndarray:
    """(side, side, 4) uint8: gradients under noise, so every PNG row filter (Paeth too) is used."""
    y, x = np.mgrid[0:side, 0:side].astype(np.uint16)
    noise = np.random.default_rng(0).integers(0, 32, (side, side, 4), dtype=np.uint16)
    return ((np.stack([x // 16, y // 16, (x + y) // 32, 128 + (x - y) // 64], -1) + noise) % 256).astype(
        np.uint8
    )


def noisy_png() -> bytes:
    return encode(Image.fromarray(noisy_pixels(4096), "RGBA"), "PNG", compress_level=1)


def noisy_tiff() -> bytes:
    return encode(Image.fromarray(noisy_pixels(4096), "RGBA"), "TIFF", compression="tiff_deflate")


def rgba16_png() -> bytes:
    import pyvips

    pixels = pyvips.Image.new_from_array(noisy_pixels(4096)).cast("ushort") * 257
    return pixels.cast("ushort").copy(interpretation="rgb16").pngsave_buffer(compression=1)


def interlaced_png() -> bytes:
    """The largest interlaced RGBA PNG Pillow may decode whole: a 32 MiB frame."""
    import pyvips

    pixels = pyvips.Image.new_from_array(noisy_pixels(2896)).copy(interpretation="srgb")
    return pixels.pngsave_buffer(interlace=True, compression=1)


def webp() -> bytes:
    """The largest WEBP accepted: libwebp and Pillow hold four 4-byte frames of it (32 MiB)."""
    return encode(Image.fromarray(noisy_pixels(1448), "RGBA"), "WEBP", quality=90)


def palette_png() -> bytes:
    image = Image.new("P", (4096, 4096), 0)
    image.info["transparency"] = 0
    return encode(image, "PNG", transparency=0)


def grey16_png() -> bytes:
    return encode(Image.new("I;16", (4096, 4096), 40000), "PNG")


def photo(fmt: str, size: tuple[int, int] = (4000, 3000), **options: object) -> bytes:
    """A photo of a digit on paper (bench/photo_digits.py) enlarged to `size` (12 megapixels)."""
    sys.path.insert(0, str(REPO))
    from bench.photo_digits import render
    from model.data import load_mnist

    small = Image.open(io.BytesIO(render("all at once", load_mnist().test.images[0], seed=3)))
    return encode(small.convert("RGB").resize(size, Image.Resampling.BICUBIC), fmt, **options)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def status(field: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def peak_extra(data: bytes) -> int:
    """Bytes above the resident set at the start that preprocessing `data` needed at its peak."""
    from app.errors import NoDigitFound
    from app.imaging import Layout, prepare

    layout = Layout(28, 20)
    for image in (small_photo(), data):
        if image is data:  # the first image paid for imports and lazy initialisation
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
            before = status("VmRSS")
        with contextlib.suppress(NoDigitFound):
            prepare(image, "auto", 4096 * 4096, layout)
    return status("VmHWM") - before


def small_photo() -> bytes:
    return encode(Image.new("RGB", (640, 480), (200, 200, 190)), "JPEG")


def measure_in_subprocess(data: bytes) -> int:
    """`peak_extra` for `data` in a fresh interpreter that never held anything larger (bytes).

    glibc's malloc is told to map every block over 64 KiB separately, so memory freed is given
    back at once and the resident set tracks what is live, as in a long-running server.
    """
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from bench import preprocess_cost as c; "
    code += "print(c.peak_extra(sys.stdin.buffer.read()))"
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True, env=env)
    return int(done.stdout.split()[-1])


def jpeg_seconds(repeats: int = 10) -> float:
    from app.imaging import Layout, prepare

    data = photo("JPEG", quality=92)
    return median_seconds(lambda: prepare(data, "auto", 4096 * 4096, Layout(28, 20)), repeats)


def patterns(side: int = 512) -> dict[str, bytes]:
    """Pictures at the working size that give the ink search the most to do: thin ink everywhere
    (a 1-px checkerboard, noise) or ruled in both directions (grids every 4 to 16 px)."""
    rows, cols = np.mgrid[:side, :side]
    pictures = {
        "1-px checkerboard": (rows + cols) % 2 * 255,
        "noise": np.random.default_rng(0).integers(0, 256, (side, side)),
    }
    for pitch in (4, 8, 16):
        pictures[f"grid every {pitch} px"] = np.where((rows % pitch == 0) | (cols % pitch == 0), 0, 255)
    return {name: encode(Image.fromarray(np.uint8(a)), "PNG") for name, a in pictures.items()}


def pattern_seconds(repeats: int = 3) -> dict[str, float]:
    """Preprocessing time of each of `patterns`, found or refused ("no digit found") alike."""
    from app.errors import NoDigitFound
    from app.imaging import Layout, prepare

    def attempt(data: bytes) -> None:
        with contextlib.suppress(NoDigitFound):
            prepare(data, "auto", 4096 * 4096, Layout(28, 20))

    return {name: median_seconds(lambda d=data: attempt(d), repeats) for name, data in patterns().items()}


def png_decode_seconds(repeats: int = 3) -> tuple[float, float]:
    """(streamed by libvips, decoded whole by Pillow) for the noisy 4096x4096 RGBA PNG: decoding
    and reduction to the working size only."""
    decode = importlib.import_module("app.imaging.decode")  # the module, not its `decode` function

    data = noisy_png()

    def whole() -> None:
        image = decode.open_checked(data, 4096 * 4096)
        image.load()
        decode.shrink(image, decode.WORKING_SIDE)

    streamed = median_seconds(lambda: decode.decode(data, 4096 * 4096), repeats)
    return streamed, median_seconds(whole, repeats)


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def eight_in_one_request() -> tuple[int, int]:
    """(resting RSS of the service, its peak RSS over one request with eight transparent PNGs).

    Measured in this process with malloc's default settings, as a server runs.
    """
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings, get_settings

    settings = Settings(weights=REPO / "weights" / "capsnet-mnist.safetensors", device="cpu")
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    data = transparent_png()
    files = [("file", (f"{i}.png", data, "image/png")) for i in range(8)]
    with TestClient(app) as client:
        while client.get("/readyz").status_code != 200:
            time.sleep(0.05)
        Path("/proc/self/clear_refs").write_text("5")
        resting = status("VmRSS")
        client.post("/v1/predict", files=files)
        return resting, status("VmHWM")


def main() -> None:
    sys.path.insert(0, str(REPO))
    print(f"12-megapixel JPEG (4000x3000), median of 10: {jpeg_seconds() * 1000:.0f} ms per image")
    for name, seconds in pattern_seconds().items():
        print(f"512x512 {name}, median of 3: {seconds * 1000:.0f} ms per image")
    streamed, whole = png_decode_seconds()
    print(
        f"4096x4096 noisy RGBA PNG decoded and reduced, median of 3: {streamed * 1000:.0f} ms streamed, "
        f"{whole * 1000:.0f} ms decoded whole by Pillow"
    )
    for name, make in CASES.items():
        print(f"peak extra memory, {name}: {measure_in_subprocess(make()) / MiB:.1f} MiB")
    resting, peak = eight_in_one_request()
    print(
        f"eight 4096x4096 transparent PNGs in one request: resting {resting / MiB:.0f} MiB, "
        f"peak {peak / MiB:.0f} MiB (+{(peak - resting) / MiB:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
