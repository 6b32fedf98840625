"""A second, independent set of photos of MNIST test digits: scenes as phones and other people make them.

Written apart from bench/photo_digits.py so that the pipeline is not judged only on the photos it
was tuned on. The digit's own shape is kept (the 28x28 digit enlarged smoothly and cut at a
level), and a thin pen follows its centre line (Zhang-Suen thinning). Each scene is a page (or
board) in a frame: paper colour and fibre, ruled or squared paper, the digit anywhere at any
size, the page tilted in perspective, a desk around it, then light (colour cast, vignette, a
hard-edged shadow, glare) and the camera (defocus, motion blur, noise, resampling, JPEG). One
condition at a time, everything at once, a whiteboard, a chalkboard, a form's printed box
around the digit, a digit circled by hand, and markers and chalk in colours whose grey is close
to their background's; fixed seeds, images made in memory.

    python bench/photo_accuracy.py --scenes 100        # accuracy on these scenes per condition
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np
from PIL import Image

Rng = np.random.Generator
RGB = tuple[float, float, float]

WHITE_PAPER: RGB = (0.93, 0.93, 0.91)
INKS: dict[str, RGB] = {
    "black": (0.08, 0.08, 0.1),
    "blue": (0.1, 0.17, 0.55),
    "red": (0.7, 0.1, 0.12),
    "green": (0.1, 0.45, 0.2),
}
BRIGHT_INKS: dict[str, RGB] = {  # markers and highlighters whose grey is close to white paper's
    "yellow": (0.95, 0.85, 0.3),
    "orange": (0.95, 0.55, 0.1),
    "pink": (0.95, 0.5, 0.65),
    "light green": (0.45, 0.8, 0.4),
}
CHALKS: dict[str, RGB] = {
    "yellow": (0.95, 0.9, 0.45),
    "pink": (0.95, 0.6, 0.7),
    "light blue": (0.55, 0.75, 0.95),
}
DRAWN = 240  # px: the largest digit drawn stroke by stroke


@dataclass(frozen=True)
class Scene:
    """Everything chosen for one photo; each condition changes a few fields of a plain scene."""

    width: int = 900
    aspect: float = 0.75  # height / width
    surface: str = "paper"  # paper, whiteboard or chalkboard
    paper: RGB = WHITE_PAPER
    lines: str = "none"  # none, ruled or grid
    frame: str = "none"  # none, box (a form's printed field) or ring (the digit circled by hand)
    digit_height: float = 0.45  # of the frame's shorter side
    offset: float = 0.1  # of the free room on each side, how far the digit may sit off the middle
    stroke: str = "pen"  # pen (thin, along the skeleton), natural (MNIST's own width), marker, pencil
    ink: RGB = INKS["black"]
    tilt: float = 0.03  # perspective: how far the page's corners move, of the frame's side
    rotation: float = 4.0  # degrees
    desk: float = 0.0  # 0: the page fills the frame; else the page's share of the frame's side
    cast: RGB = (1.0, 1.0, 1.0)  # white balance gains
    vignette: float = 0.15  # light lost at the corners
    shadow: float = 0.0  # light lost under a hard-edged shadow
    glare: float = 0.0
    defocus: float = 0.6  # Gaussian sigma, of 1000 px
    motion: float = 0.0  # blur length, of the frame's side
    noise: float = 0.015
    scale_to: int = 0  # resampled to this width before encoding (0: as rendered)
    quality: int = 90


def plain(rng: Rng) -> Scene:
    return Scene(
        width=int(rng.integers(480, 1000)),
        aspect=float(rng.choice([0.75, 1.33, 0.5625, 1.0])),
        ink=INKS[str(rng.choice(["black", "blue"]))],
        digit_height=float(rng.uniform(0.3, 0.6)),
        quality=int(rng.integers(75, 96)),
    )


def colour_cast(rng: Rng) -> dict:
    warm = rng.random() < 0.5
    gains = (1.0, 0.9, 0.7) if warm else (0.75, 0.88, 1.0)
    paper = WHITE_PAPER if rng.random() < 0.4 else (0.95, 0.9, 0.72)  # yellowish, recycled
    return {"cast": tuple(g * rng.uniform(0.9, 1.05) for g in gains), "paper": paper}


def everything(rng: Rng) -> dict:
    return {
        **colour_cast(rng),
        "tilt": rng.uniform(0.05, 0.15),
        "rotation": rng.uniform(-12, 12),
        "offset": 0.6,
        "digit_height": rng.uniform(0.2, 0.5),
        "lines": str(rng.choice(["ruled", "grid"])),
        "ink": INKS[str(rng.choice(list(INKS)))],
        "vignette": rng.uniform(0.3, 0.5),
        "shadow": rng.uniform(0.3, 0.5),
        "motion": rng.uniform(0.0, 0.008),
        "quality": int(rng.integers(40, 80)),
        "desk": rng.choice([0.0, rng.uniform(0.6, 0.85)]),
    }


CONDITIONS: dict[str, Callable[[Rng], dict]] = {
    "plain paper, pen": lambda rng: {},
    "perspective tilt": lambda rng: {"tilt": rng.uniform(0.1, 0.2), "rotation": rng.uniform(-15, 15)},
    "digit off-centre": lambda rng: {"offset": 0.9, "digit_height": rng.uniform(0.2, 0.35)},
    "small digit, big page": lambda rng: {
        "width": 1800,
        "digit_height": rng.uniform(0.07, 0.14),
        "offset": 0.5,
    },
    "digit fills the frame": lambda rng: {"digit_height": rng.uniform(0.75, 0.88), "offset": 0.0},
    "colour cast, yellow paper": colour_cast,
    "strong vignette": lambda rng: {"vignette": rng.uniform(0.45, 0.65)},
    "hard shadow": lambda rng: {"shadow": rng.uniform(0.35, 0.6)},
    "squared paper": lambda rng: {"lines": "grid"},
    "ruled paper, margin": lambda rng: {"lines": "ruled"},
    "pencil": lambda rng: {"stroke": "pencil", "ink": (0.45, 0.45, 0.47)},
    "felt marker": lambda rng: {"stroke": "marker"},
    "ballpoint blue/red": lambda rng: {"ink": INKS[str(rng.choice(["blue", "red"]))]},
    "natural stroke width": lambda rng: {"stroke": "natural"},
    "motion blur": lambda rng: {"motion": rng.uniform(0.01, 0.025)},
    "jpeg quality 15-40": lambda rng: {"quality": int(rng.integers(15, 41))},
    "tiny image (100-200 px)": lambda rng: {"scale_to": int(rng.integers(100, 201)), "digit_height": 0.6},
    "large image (3000+ px)": lambda rng: {"width": int(rng.integers(3000, 4001)), "aspect": 0.75},
    "desk around the page": lambda rng: {
        "desk": rng.uniform(0.45, 0.8),
        "digit_height": rng.uniform(0.2, 0.4),
    },
    "everything at once": everything,
    "whiteboard": lambda rng: {
        "surface": "whiteboard",
        "stroke": "marker",
        "glare": rng.uniform(0.5, 0.9),
        "ink": INKS[str(rng.choice(list(INKS)))],
        "paper": (0.9, 0.92, 0.93),
    },
    "chalkboard": lambda rng: {
        "surface": "chalkboard",
        "stroke": "natural",
        "ink": (0.9, 0.9, 0.85),
        "paper": (0.16, 0.3, 0.22) if rng.random() < 0.6 else (0.13, 0.13, 0.14),
    },
    "digit in a form's box": lambda rng: {"frame": "box", "digit_height": rng.uniform(0.25, 0.5)},
    "digit circled": lambda rng: {"frame": "ring", "digit_height": rng.uniform(0.2, 0.4)},
    "coloured marker": lambda rng: {
        "stroke": "marker",
        "ink": BRIGHT_INKS[str(rng.choice(list(BRIGHT_INKS)))],
    },
    "coloured chalk": lambda rng: {
        "surface": "chalkboard",
        "stroke": "natural",
        "ink": CHALKS[str(rng.choice(list(CHALKS)))],
        "paper": (0.16, 0.3, 0.22) if rng.random() < 0.6 else (0.13, 0.13, 0.14),
    },
}


def render(condition: str, digit: np.ndarray, seed: int) -> bytes:
    """A JPEG photo of `digit` (28x28 uint8, white on black) under `condition`."""
    rng = np.random.default_rng(seed)
    scene = replace(plain(rng), **CONDITIONS[condition](rng))
    width, height = scene.width, int(scene.width * scene.aspect)
    page = surface(scene, rng, width, height)
    coverage, ghost = place_digit(scene, rng, digit, width, height)
    if scene.frame != "none":
        page = frame_digit(scene, rng, page, coverage)
    page = apply_ink(scene, rng, page, coverage, ghost)
    frame = photograph_page(scene, rng, page)
    frame = light(scene, rng, frame)
    return camera(scene, rng, frame)


def surface(scene: Scene, rng: Rng, width: int, height: int) -> np.ndarray:
    """(H, W, 3) the page or board: its colour, fibre or dust, and its printed lines."""
    grain = smooth_noise(rng, height, width, 1.0) * 0.02 + smooth_noise(rng, height, width, 40.0) * 0.03
    page = np.array(scene.paper, np.float32) * (1.0 + grain[..., None])
    if scene.surface == "chalkboard":  # wiped chalk leaves a light haze in wide smears
        haze = np.clip(smooth_noise(rng, height, width, width / 12), 0, None) * rng.uniform(0.05, 0.15)
        page = page + haze[..., None]
    if scene.lines != "none":
        page = rule(scene, rng, page)
    return page


def rule(scene: Scene, rng: Rng, page: np.ndarray) -> np.ndarray:
    height, width = page.shape[:2]
    pitch = scene.digit_height * min(height, width) * rng.uniform(0.25, 0.6)
    colour = np.array([(0.45, 0.6, 0.85), (0.6, 0.6, 0.62), (0.55, 0.75, 0.6)][rng.integers(3)], np.float32)
    thickness = max(1, int(round(width / 800 * rng.uniform(1, 2.5))))
    lines = np.zeros((height, width), np.uint8)
    start = rng.uniform(0, pitch)
    for y in np.arange(start, height, pitch):
        cv2.line(lines, (0, int(y)), (width, int(y)), 255, thickness)
    if scene.lines == "grid":
        for x in np.arange(start, width, pitch):
            cv2.line(lines, (int(x), 0), (int(x), height), 255, thickness)
    alpha = (lines / 255.0 * rng.uniform(0.5, 0.9))[..., None]
    page = page * (1 - alpha) + colour * page * alpha
    if scene.lines == "ruled":  # the red margin
        margin = np.zeros((height, width), np.uint8)
        x = int(width * rng.uniform(0.05, 0.15))
        cv2.line(margin, (x, 0), (x, height), 255, thickness)
        alpha = (margin / 255.0 * 0.7)[..., None]
        page = page * (1 - alpha) + np.array([0.85, 0.3, 0.3], np.float32) * page * alpha
    return page


def frame_digit(scene: Scene, rng: Rng, page: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """A form's printed field around the digit, a margin of 10-40% of its height clear of it, or
    a ring drawn around it by hand with the digit's own ink."""
    rows, cols = np.nonzero(coverage > 0.1)
    margin = (rows.max() - rows.min()) * rng.uniform(0.1, 0.4)
    top, left = int(rows.min() - margin), int(cols.min() - margin)
    bottom, right = int(rows.max() + margin), int(cols.max() + margin)
    drawn = np.zeros(page.shape[:2], np.uint8)
    if scene.frame == "box":
        thickness = max(1, int(round(page.shape[1] / 600 * rng.uniform(1, 3))))
        cv2.rectangle(drawn, (left, top), (right, bottom), 255, thickness)
        colour = np.array(
            [(0.3, 0.3, 0.32), (0.35, 0.45, 0.75), (0.75, 0.35, 0.35)][rng.integers(3)], np.float32
        )
    else:
        centre, axes = (
            ((left + right) // 2, (top + bottom) // 2),
            ((right - left) * 3 // 4, (bottom - top) * 3 // 4),
        )
        thickness = max(2, int(round((bottom - top) * rng.uniform(0.02, 0.05))))
        cv2.ellipse(drawn, centre, axes, rng.uniform(-20, 20), 0, 360, 255, thickness)
        colour = np.array(scene.ink, np.float32)
    alpha = (drawn / 255.0 * rng.uniform(0.6, 0.9))[..., None]
    return page * (1 - alpha) + colour * page * alpha


def place_digit(scene: Scene, rng: Rng, digit: np.ndarray, width: int, height: int) -> tuple:
    """(coverage, ghost) (H, W) in [0, 1]: the digit's ink, and an earlier digit badly wiped off."""
    side = scene.digit_height * min(width, height)
    coverage = np.zeros((height, width), np.float32)
    field = strokes(scene, rng, digit, side)
    fh, fw = field.shape
    left = int((width - fw) / 2 * (1 + rng.uniform(-1, 1) * scene.offset))  # negative: the field's
    top = int((height - fh) / 2 * (1 + rng.uniform(-1, 1) * scene.offset))  # empty margin overflows
    crop = field[max(0, -top) : height - top, max(0, -left) : width - left]
    top, left = max(0, top), max(0, left)
    coverage[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    ghost = np.zeros_like(coverage)
    if scene.surface != "paper":
        smear = cv2.GaussianBlur(
            np.roll(coverage, (int(fh * 0.3), int(fw * rng.choice([-1, 1]))), (0, 1)), (0, 0), side / 25
        )
        ghost = smear * rng.uniform(0.1, 0.25)
    return coverage, ghost


def strokes(scene: Scene, rng: Rng, digit: np.ndarray, side: float) -> np.ndarray:
    """The digit at `side` px high (its 20 px box, as in MNIST), as coverage in [0, 1].

    Drawn at most `DRAWN` px high and enlarged from there: a photo's optics blur more than that.
    """
    drawn = strokes_at(scene, rng, digit, min(side, DRAWN))
    size = max(8, int(round(28 * side / 20)))
    return (
        cv2.resize(drawn, (size, size), interpolation=cv2.INTER_LINEAR) if drawn.shape[0] != size else drawn
    )


def strokes_at(scene: Scene, rng: Rng, digit: np.ndarray, side: float) -> np.ndarray:
    scale = side / 20
    size = max(8, int(round(28 * scale)))
    f = cv2.resize(digit.astype(np.float32) / 255, (size, size), interpolation=cv2.INTER_CUBIC)
    f = cv2.GaussianBlur(np.clip(f, 0, 1), (0, 0), max(0.5, 0.35 * scale))
    if scene.stroke == "pen":
        width = rng.uniform(0.025, 0.07) * side
        pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(1, int(round(width))),) * 2)
        line = cv2.dilate(skeleton(f > 0.4), pen).astype(np.float32)
        return cv2.GaussianBlur(line, (0, 0), max(0.5, width / 6)) * pressure(rng, size, 0.8)
    level = {"natural": 0.45, "marker": 0.2, "pencil": 0.5}[scene.stroke]
    cover = np.clip((f - level) / 0.15 + 0.5, 0, 1)
    if scene.stroke == "marker":
        pen = int(rng.uniform(0.04, 0.08) * side) | 1
        cover = cv2.dilate(cover, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (pen, pen)))
    if scene.stroke == "pencil" or scene.surface == "chalkboard":  # graphite and chalk are grainy
        cover = cover * (rng.random(cover.shape) < rng.uniform(0.5, 0.85))
        cover = cv2.GaussianBlur(cover.astype(np.float32), (0, 0), 0.7)
    return cover * pressure(rng, size, 0.7)


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang and Suen's thinning (1984): the mask peeled to its one-pixel centre line."""
    mask = mask.astype(np.uint8)
    while True:
        before = int(mask.sum())
        for step in THINNING_STEPS:
            codes = cv2.filter2D(mask, cv2.CV_32F, NEIGHBOUR_BITS, borderType=cv2.BORDER_CONSTANT)
            mask = mask & ~step[codes.astype(np.uint8)]
        if int(mask.sum()) == before:
            return mask


def thinning_steps() -> tuple[np.ndarray, np.ndarray]:
    """For each 8-neighbourhood code (bit i: neighbour P(i+2), clockwise from north), 1 to peel."""
    bits = (np.arange(256)[:, None] >> np.arange(8)) & 1  # (256, 8): P2..P9
    count = bits.sum(axis=1)
    rises = ((bits == 0) & (np.roll(bits, -1, axis=1) == 1)).sum(axis=1)
    p2, p4, p6, p8 = bits[:, 0], bits[:, 2], bits[:, 4], bits[:, 6]
    common = (count >= 2) & (count <= 6) & (rises == 1)
    first = common & (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
    second = common & (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
    return first.astype(np.uint8), second.astype(np.uint8)


NEIGHBOUR_BITS = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], np.float32)
THINNING_STEPS = thinning_steps()


def pressure(rng: Rng, size: int, low: float) -> np.ndarray:
    """A hand's pressure along the strokes: slowly varying between `low` and 1."""
    return (low + (1 - low) * (0.5 + 0.5 * np.tanh(smooth_noise(rng, size, size, size / 6) * 2))).astype(
        np.float32
    )


def apply_ink(
    scene: Scene, rng: Rng, page: np.ndarray, coverage: np.ndarray, ghost: np.ndarray
) -> np.ndarray:
    ink = np.array(scene.ink, np.float32)
    if scene.surface == "paper":  # ink filters the light the paper reflects
        alpha = coverage[..., None]
        return page * (1 - alpha) + page * ink * alpha
    alpha = np.clip(coverage + ghost, 0, 1)[..., None]
    return page * (1 - alpha) + ink * alpha  # marker and chalk sit on the board


def photograph_page(scene: Scene, rng: Rng, page: np.ndarray) -> np.ndarray:
    """The page seen by the camera: tilted in perspective, with the desk around it when there is one."""
    height, width = page.shape[:2]
    share = scene.desk if scene.desk else 1.0  # without a desk the page runs past the frame
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    centre = np.array([width / 2, height / 2], np.float32)
    angle = np.deg2rad(scene.rotation)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    placed = (corners - centre) * share @ turn.T + centre
    placed += (
        rng.uniform(-1, 1, (4, 2)).astype(np.float32) * scene.tilt * np.array([width, height], np.float32)
    )
    warp = cv2.getPerspectiveTransform(corners, placed.astype(np.float32))
    seen = cv2.warpPerspective(
        page, warp, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    if not scene.desk:
        return seen
    mask = cv2.warpPerspective(np.ones((height, width), np.float32), warp, (width, height))[..., None]
    return seen * mask + desk(rng, width, height) * (1 - mask)


def desk(rng: Rng, width: int, height: int) -> np.ndarray:
    """Wood with its grain, or a dark or grey table top."""
    colour = np.array([(0.45, 0.3, 0.18), (0.18, 0.18, 0.2), (0.55, 0.55, 0.53)][rng.integers(3)], np.float32)
    grain = smooth_noise(rng, height, width // 40 + 1, 2.0)
    grain = cv2.resize(grain, (width, height), interpolation=cv2.INTER_LINEAR) * 0.12
    return colour * (1 + grain[..., None])


def light(scene: Scene, rng: Rng, frame: np.ndarray) -> np.ndarray:
    """Light over the frame: a gradient, the vignette, a hard shadow, glare, the white balance."""
    height, width = frame.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (x - width / 2) / (width / 2), (y - height / 2) / (height / 2)
    direction = rng.uniform(0, 2 * np.pi)
    gain = 1.0 + 0.12 * (u * np.cos(direction) + v * np.sin(direction))
    gain *= 1.0 - scene.vignette * np.clip((u**2 + v**2) / 2, 0, 1) ** 1.5 * 2
    if scene.shadow:
        gain *= 1 - scene.shadow * hard_shadow(rng, width, height)
    lit = frame * np.clip(gain, 0.05, None)[..., None] * rng.uniform(0.85, 1.1)
    if scene.glare:  # a window's reflection: the board's colour washed out towards white
        cx, cy = rng.uniform(-0.6, 0.6, 2)
        spot = np.exp(-(((u - cx) / rng.uniform(0.3, 0.7)) ** 2 + ((v - cy) / rng.uniform(0.2, 0.5)) ** 2))
        lit = lit + (1.3 - lit) * (scene.glare * spot)[..., None]
    return np.clip(lit * np.array(scene.cast, np.float32), 0, 1)


def hard_shadow(rng: Rng, width: int, height: int) -> np.ndarray:
    """(H, W) 1 under the shadow of a phone or hand: a polygon from one edge, its edge sharp."""
    mask = np.zeros((height, width), np.uint8)
    side = rng.integers(4)
    depth = rng.uniform(0.3, 0.65)
    if side in (0, 1):  # from the left or right
        x0 = 0 if side == 0 else width
        reach = width * depth * (1 if side == 0 else -1)
        points = [
            (x0, 0),
            (x0 + reach * rng.uniform(0.5, 1.3), 0),
            (x0 + reach * rng.uniform(0.5, 1.3), height),
            (x0, height),
        ]
    else:
        y0 = 0 if side == 2 else height
        reach = height * depth * (1 if side == 2 else -1)
        points = [
            (0, y0),
            (0, y0 + reach * rng.uniform(0.5, 1.3)),
            (width, y0 + reach * rng.uniform(0.5, 1.3)),
            (width, y0),
        ]
    cv2.fillPoly(mask, [np.array(points, np.int32)], 1)
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(0.8, width / 600))


def camera(scene: Scene, rng: Rng, frame: np.ndarray) -> bytes:
    height, width = frame.shape[:2]
    frame = cv2.GaussianBlur(frame, (0, 0), max(0.3, scene.defocus * width / 1000))
    if scene.motion:
        length = max(3, int(scene.motion * width)) | 1
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1
        turn = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, turn, (length, length))
        frame = cv2.filter2D(frame, -1, kernel / kernel.sum())
    frame = frame + rng.standard_normal(frame.shape, np.float32) * np.float32(scene.noise)
    if scene.scale_to:
        size = (scene.scale_to, max(1, int(scene.scale_to * height / width)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    pixels = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=scene.quality)
    return out.getvalue()


def smooth_noise(rng: Rng, height: int, width: int, sigma: float) -> np.ndarray:
    """(H, W) float32 noise with features about `sigma` px across, unit spread."""
    small = max(1.0, sigma / 2)  # made at a coarser grid and enlarged: cheap for wide features
    h, w = max(2, int(height / small)), max(2, int(width / small))
    noise = cv2.GaussianBlur(rng.standard_normal((h, w), np.float32), (0, 0), max(0.5, sigma / small))
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR)
    return noise / max(float(noise.std()), 1e-6)
