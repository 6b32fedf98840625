"""What preprocessing one image costs: time for a 12-megapixel JPEG, peak memory for the worst cases.

Memory is the process's peak resident set (Linux VmHWM, reset before each case through
/proc/self/clear_refs) minus its resident set just before, measured in a fresh subprocess per
case, so it counts Pillow's and OpenCV's C buffers that tracemalloc cannot see. "Eight in one
request" sends eight 4096x4096 transparent PNGs to POST /v1/predict of the service with the
shipped weights and compares the peak with the service's resting memory.

    python bench/preprocess_cost.py
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
CASES = {
    "4096x4096 transparent PNG (RGBA)": lambda: transparent_png(),
    "4096x4096 transparent PNG (palette)": lambda: palette_png(),
    "4096x4096 16-bit grey PNG": lambda: grey16_png(),
    "12-megapixel JPEG photo": lambda: photo_jpeg(),
}


def transparent_png() -> bytes:
    return encode(Image.new("RGBA", (4096, 4096), (0, 0, 0, 0)), "PNG")


def palette_png() -> bytes:
    image = Image.new("P", (4096, 4096), 0)
    image.info["transparency"] = 0
    return encode(image, "PNG", transparency=0)


def grey16_png() -> bytes:
    return encode(Image.new("I;16", (4096, 4096), 40000), "PNG")


def photo_jpeg() -> bytes:
    """A photo of a digit on paper (bench/photo_digits.py) enlarged to 4000x3000."""
    sys.path.insert(0, str(REPO))
    from bench.photo_digits import render
    from model.data import load_mnist

    small = Image.open(io.BytesIO(render("all at once", load_mnist().test.images[0], seed=3)))
    return encode(small.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC), "JPEG", quality=92)


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

    data = photo_jpeg()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        prepare(data, "auto", 4096 * 4096, Layout(28, 20))
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
    for name, make in CASES.items():
        print(f"peak extra memory, {name}: {measure_in_subprocess(make()) / MiB:.1f} MiB")
    resting, peak = eight_in_one_request()
    print(
        f"eight 4096x4096 transparent PNGs in one request: resting {resting / MiB:.0f} MiB, "
        f"peak {peak / MiB:.0f} MiB (+{(peak - resting) / MiB:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
