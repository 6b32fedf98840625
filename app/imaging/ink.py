"""Ink versus paper under any light: polarity, a flattened background, thresholds that adapt.

The paper's brightness is estimated locally by a grey-level closing (an opening for light ink
on a dark board): a window wider than any pen stroke removes the strokes and keeps the paper,
and since closing leaves every monotone change of brightness as it is, gradients, vignettes and
the edge of a shadow stay in the background estimate instead of becoming ink. Ink is then how
much darker than its own paper each pixel is, relative to that paper, so ink in shadow counts
as much as ink in the light. What is ink is decided by hysteresis: Otsu's threshold over what
stands out of the noise finds the strokes, and the faint pixels joined to them come along.
Coloured ink is read in the colour channel where it stands out most (a green marker in the red
channel), where that is clearly further than in grey.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.errors import NoDigitFound
from app.imaging.frame import edge_pixels, fills_the_picture, touches_frame
from model.mnist_style import MIN_CONTRAST

WINDOW_FRACTION = 0.25  # the background window, of the image's shorter side: wider than strokes
SHADED_WINDOW_FRACTION = 0.1  # the same where the background is not flat (shadows, glare)
FLAT = 0.08  # a background whose brightness varies less than this is flat
MIN_WINDOW = 7  # px: wider than MNIST's strokes at its own size
NOISE_SIGMAS = 4.0  # weak ink stands this many noise deviations above the paper
MIN_FLOOR = 0.02
MIN_PHOTO = 64  # px: smaller pictures are icons, MNIST or UCI digits, not photos
STROKE_WINDOW_FRACTION = 0.04  # of the shorter side: a few pen strokes wide
CLEAN = 0.5 / 255  # a background with less spread than this is one exact level
CLEAN_BORDER = 0.9  # of the border at one exact level: a rendering, where a drawing may run off the edge
CLEAR_TAIL = 2.5  # one tail of the histogram this many times longer than the other is the ink
LEAN_TAIL = 1.3  # a dark tail this many times longer is enough (fat marker, glare): dark ink is common
BROAD_TAIL = 0.08  # of the shorter side: a light tail this deep is a lit page or glare, no chalk
COLOUR_GAIN = 1.25  # a colour channel is read instead of grey where the ink stands out this much further
PAPER_SAMPLE = 8  # the paper's median level is read from every 8th of its pixels: it is most of them
HISTOGRAM_BINS = 32  # grey levels this close are one level, for how common the ink's levels are


@dataclass(frozen=True)
class Ink:
    level: np.ndarray  # (H, W) float32: light ink on a zero background, 1 = as dark as ink gets
    floor: float  # above it a pixel stands out of the paper's noise
    cut: float  # above it a pixel is a stroke's core (Otsu's threshold)
    flat: bool  # the background is flat (a scan, a canvas) rather than lit unevenly (a photo)

    @property
    def weak(self) -> np.ndarray:
        return self.level > self.floor

    @property
    def strong(self) -> np.ndarray:
        return self.level > self.cut


def find_ink(grey: np.ndarray, colour: np.ndarray | None = None) -> Ink:
    """The ink of a picture with its polarity (`flattened_grey`); in a colour picture, in the
    colour channel where it stands out most, if that is clearly further than in grey
    (`ink_channel`)."""
    level, flat, dark_ink = flattened_grey(grey)
    ink = ink_of(level, flat)
    channel = None if colour is None else ink_channel(grey, colour, ink, dark_ink)
    if channel is not None:
        ink = ink_of(*flatten(channel, dark_ink))
    if float(np.percentile(ink.level, 99.9)) < MIN_CONTRAST and ink.level.max() < 2 * MIN_CONTRAST:
        raise NoDigitFound("no digit found: the image has no ink that stands out from its background")
    return ink


def ink_of(level: np.ndarray, flat: bool) -> Ink:
    """The thresholds of a flattened image: its paper's noise and Otsu's cut above it."""
    floor = noise_floor(level)
    if flat:  # a clean image may be mostly ink (a UCI digit fills its frame): the median is no paper
        floor = max(min(floor, otsu(level) / 2), MIN_FLOOR)
    return Ink(level, floor, max(otsu(level[level > floor]), floor), flat)


def flattened_grey(grey: np.ndarray) -> tuple[np.ndarray, bool, bool]:
    """`flatten` with the ink's polarity, and the polarity (True: dark ink): the histogram's where
    it is clear (`polarity`), else the thin features' (`thin_features_darker`); light ink needs a
    second cue besides light thin features, since the paper between broad dark strokes is a light
    thin feature too: its grey levels must be rarer than those of the dark candidate
    (`commonness`). Ink is sparse, so its levels are rare; the paper between strokes has the
    paper's level, the commonest of all. Likewise the board between broad light strokes is a dark
    thin feature (a light digit cropped close): dark thin features are the ink only where reading
    the ink as dark finds any.
    """
    dark_ink = polarity(grey)
    if dark_ink is not None:
        return *flatten(grey, dark_ink), dark_ink
    if thin_features_darker(grey):
        as_dark = flatten(grey, True)
        return (*as_dark, True) if ink_of(*as_dark).strong.any() else (*flatten(grey, False), False)
    as_dark, as_light = flatten(grey, True), flatten(grey, False)
    shares = level_shares(grey)
    if commonness(shares, *as_light) < commonness(shares, *as_dark):
        return *as_light, False
    return *as_dark, True


def ink_channel(grey: np.ndarray, colour: np.ndarray, ink: Ink, dark_ink: bool) -> np.ndarray | None:
    """The colour channel in which the ink found in grey stands out from the paper `COLOUR_GAIN`
    times further than in grey, or None. A green or red marker, a highlighter: the channel of the
    colour it absorbs is as dark as black ink where its grey is a third of the way to white, and
    under glare that washes a board out, that difference is the stroke's. Not a blue pen on paper
    ruled in light blue, where the channel that darkens the pen darkens the rules as much: there
    the pen gains little over its grey."""
    strong, paper = ink.strong, ~ink.weak
    if not strong.any() or not paper.any():
        return None
    ink_levels = median_levels(grey, colour, np.flatnonzero(strong))
    paper_levels = median_levels(grey, colour, np.flatnonzero(paper)[::PAPER_SAMPLE])
    if dark_ink:
        contrasts = (paper_levels - ink_levels) / np.maximum(paper_levels, 1e-3)
    else:
        contrasts = (ink_levels - paper_levels) / np.maximum(1.0 - paper_levels, 1e-3)
    best = int(np.argmax(contrasts))
    if not best or contrasts[best] < COLOUR_GAIN * contrasts[0]:
        return None
    return colour[..., best - 1].astype(np.float32) / np.float32(255)


def median_levels(grey: np.ndarray, colour: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(1 + channels,) in [0, 1]: the median of grey and of each colour channel (bytes) over the
    flat indices `pixels`."""
    channels = colour.reshape(-1, colour.shape[2])[pixels]
    return np.r_[np.median(grey.ravel()[pixels]), np.median(channels, axis=0) / 255]


def level_shares(grey: np.ndarray) -> np.ndarray:
    """(H, W): for each pixel, the share of the picture's pixels whose grey level is in its bin."""
    bins = np.clip((cv2.medianBlur(grey, 3) * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
    return (np.bincount(bins.ravel(), minlength=HISTOGRAM_BINS) / bins.size)[bins]


def commonness(shares: np.ndarray, level: np.ndarray, flat: bool) -> float:
    """How common the grey levels of the ink found in `level` are in its picture (`level_shares`),
    averaged over the strokes' cores, weighted by their ink level. 1 when there is no ink."""
    strong = ink_of(level, flat).strong
    if not strong.any():
        return 1.0
    return float(np.average(shares[strong], weights=level[strong]))


def polarity(grey: np.ndarray) -> bool | None:
    """True for dark ink on light paper, False for light on dark, None when the histogram can't tell.

    Ink is the sparse tail of the histogram: the side that reaches clearly further from the
    median. An image whose background is exactly one level (a canvas export, a rendering) is
    read whole; a small one (an icon, a UCI digit filling its frame) that shows no clear tail
    by its border (`border_is_paper`). In a photo the middle half, where people aim, is read
    first: a dark desk or a board's frame around the page can cover more of the picture than
    the page itself. When the middle gives no clear answer (glare, a shadow across it, a fat
    stroke), the whole picture is read, unless the middle leans the other way. Dark ink is the
    common case, so a whole picture that only leans dark is taken as dark; light ink needs a
    clear light tail, and one of thin strokes: a broad light tail is a lit page on a dark desk,
    or glare, not chalk. A shadow over half the page puts the median between two paper levels;
    then neither side is clearly further and `flattened_grey` decides from the thin features.
    """
    h, w = grey.shape
    whole = tails(grey)
    if whole[0] == np.inf or min(h, w) < MIN_PHOTO:
        return whole[1] if whole[0] >= CLEAR_TAIL else border_is_paper(grey)
    clarity, dark_ink = tails(grey[h // 4 : h - h // 4, w // 4 : w - w // 4])
    if clarity >= CLEAR_TAIL:
        return dark_ink
    middle_leans = dark_ink if clarity > 0 else None
    if whole[1]:
        return True if whole[0] >= LEAN_TAIL and middle_leans is not False else None
    if whole[0] < CLEAR_TAIL or middle_leans is True:
        return None
    return light_tail_is_broad(grey)  # a broad light tail is the page: the ink on it is dark


def border_is_paper(grey: np.ndarray) -> bool:
    """Whether the ink is darker than the border's median: in an icon, an MNIST or a UCI digit
    (lit evenly, cropped close) the border is mostly paper, even where the digit fills the
    frame and its ink is no sparse tail; small strokes as thin as the gaps between them fool
    the thin-feature test there."""
    border = edge_pixels(grey)
    return bool(np.median(border) > grey.mean())


def light_tail_is_broad(grey: np.ndarray) -> bool:
    """Whether the picture's light tail (what is lighter than halfway from the median to its
    lightest) is a broad area rather than strokes: deeper than `BROAD_TAIL` of the shorter side."""
    median, high = np.percentile(grey, [50, 99.8])
    light = (grey > (median + high) / 2).astype(np.uint8)
    depth = cv2.distanceTransform(light, cv2.DIST_L2, 3)
    return float(np.percentile(depth[light > 0], 99)) > BROAD_TAIL * min(grey.shape)


def tails(grey: np.ndarray) -> tuple[float, bool]:
    """(how many times longer the longer tail of the histogram is, whether it is the dark one).

    Infinite when the other side has no spread at all (a clean background). 0 when the longer
    side is no tail: when a quarter of the pixels already reach halfway along it, it is a
    second background (a desk, the middle of a fat stroke), not sparse ink.
    """
    low, q1, median, q3, high = np.percentile(grey, [0.2, 25, 50, 75, 99.8])
    dark, light = median - low, high - median
    dark_ink = bool(dark > light)
    if min(dark, light) < CLEAN:
        return np.inf, dark_ink
    if (median - q1 if dark_ink else q3 - median) > max(dark, light) / 2:
        return 0.0, dark_ink
    return max(dark, light) / min(dark, light), dark_ink


def thin_features_darker(grey: np.ndarray) -> bool:
    """Whether the strongest thin features are dark: pen strokes are thin, shadows and glare wide.

    The black and white top-hats with a window a few strokes wide keep only features narrower
    than it, dark and light ones respectively; the stronger of the two is the ink. Strength is
    taken over the strongest pixels a small digit's strokes cover (a count, not a fraction of
    the picture: a small digit on a large textured page covers a tiny fraction of it).
    """
    k = max(5, int(min(grey.shape) * STROKE_WINDOW_FRACTION) | 1)
    window = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    smooth = cv2.medianBlur(grey, 3)
    dark = cv2.morphologyEx(smooth, cv2.MORPH_BLACKHAT, window)
    light = cv2.morphologyEx(smooth, cv2.MORPH_TOPHAT, window)
    return strongest(dark, min(grey.shape) // 4) > strongest(light, min(grey.shape) // 4)


def strongest(values: np.ndarray, count: int) -> float:
    """The mean of the `count` largest values."""
    flat = values.ravel()
    count = min(max(count, 1), flat.size)
    return float(np.partition(flat, flat.size - count)[-count:].mean())


def flatten(grey: np.ndarray, dark_ink: bool) -> tuple[np.ndarray, bool]:
    """(H, W) float32 in [0, 1]: 0 on the paper (or board) wherever it is, rising with the ink;
    and whether the background was flat.

    A wide window keeps even a marker's strokes out of the background; where the background
    turns out not to be flat (shadows, glare), a narrower one follows it more closely, but
    never narrower than twice the widest stroke: a window narrower than a fat marker's stroke
    would take the stroke's middle for paper. The widest stroke is measured on what the wide
    window flattened, where fat strokes are whole (a hollowed stroke measures as two thin
    edges), and again on each narrower window's result.
    """
    border = edge_pixels(grey)
    clean = float(np.mean(np.abs(border - np.median(border)) < CLEAN)) >= CLEAN_BORDER
    if min(grey.shape) < MIN_PHOTO or clean:
        # an icon, MNIST or UCI digit, or a rendering whose border is one exact level but where a
        # drawing runs off it (a canvas export, a clean scan): lit evenly, the border is paper,
        # however fat the strokes
        return flattened(grey, np.full_like(grey, np.median(border)), dark_ink), True
    smooth = cv2.medianBlur(grey, 3)  # noise must not lift the envelope
    wide = window(grey, WINDOW_FRACTION)
    background = envelope(smooth, dark_ink, wide)
    whole_strokes = flattened(grey, background, dark_ink)
    low, high = np.percentile(background, [2, 98])
    if high - low <= FLAT:
        return whole_strokes, True
    k = min(max(window(grey, SHADED_WINDOW_FRACTION), int(2 * widest_stroke(whole_strokes)) | 1), wide)
    while k < wide:
        level = flattened(grey, envelope(smooth, dark_ink, k), dark_ink)
        if 2 * widest_stroke(level) < k:
            return level, False
        k = min(2 * k + 1, wide)
    return whole_strokes, False


def window(grey: np.ndarray, fraction: float) -> int:
    """An odd window size, `fraction` of the image's shorter side."""
    return max(MIN_WINDOW, int(min(grey.shape) * fraction) | 1)


def widest_stroke(level: np.ndarray) -> float:
    """The width of the widest stroke (px): twice the largest distance from the ink's edge.

    The ink is what is above half the strongest level (its 99.9th percentile), less what
    touches the frame (a desk, the edge of a shadow) unless it fills the picture (a digit cropped
    close); the largest distance is its 99th percentile over the ink, so that a lone blot does
    not count.
    """
    ink = (level > 0.5 * float(np.percentile(level, 99.9))).astype(np.uint8)
    _, labels, stats, centres = cv2.connectedComponentsWithStats(ink)
    frame = touches_frame(stats, *ink.shape)
    frame[0] = False  # the background
    ink[(frame & ~fills_the_picture(labels, centres))[labels]] = 0
    if not ink.any():
        return 0.0
    distance = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
    return 2.0 * float(np.percentile(distance[ink > 0], 99))


def flattened(grey: np.ndarray, background: np.ndarray, dark_ink: bool) -> np.ndarray:
    """Ink relative to its own background: dark ink as a fraction of the paper's brightness."""
    if dark_ink:
        level = 1.0 - grey / np.maximum(background, 1e-3)
    else:
        level = (grey - background) / np.maximum(1.0 - background, 1e-3)
    return np.clip(level, 0.0, 1.0).astype(np.float32)


def envelope(grey: np.ndarray, dark_ink: bool, k: int) -> np.ndarray:
    """The paper's brightness: a closing (an opening for light ink) `k` px wide, wider than any stroke."""
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    return cv2.morphologyEx(grey, cv2.MORPH_CLOSE if dark_ink else cv2.MORPH_OPEN, square)


def noise_floor(level: np.ndarray) -> float:
    """The paper's level plus a few robust deviations of its noise (most pixels are paper)."""
    median = float(np.median(level))
    spread = 1.4826 * float(np.median(np.abs(level - median)))
    return max(median + NOISE_SIGMAS * spread, MIN_FLOOR)


def otsu(values: np.ndarray) -> float:
    """Otsu's threshold over `values` in [0, 1] (0 when there are too few to split)."""
    if values.size < 8:
        return 0.0
    as_bytes = np.round(values * 255).astype(np.uint8).reshape(-1, 1)
    threshold, _ = cv2.threshold(as_bytes, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(threshold) / 255.0
