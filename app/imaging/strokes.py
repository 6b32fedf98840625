"""From ink to the digit's strokes: ruled lines out, specks out, the digit picked and cropped.

Ruled or grid lines are found as long straight segments (probabilistic Hough transform) that
cross most of the picture, or shorter ones (a page on a desk) that make a ruling of several,
erased, and the strokes they crossed bridged again; a pen stroke far darker than the rules
stays where it runs along one. The digit is the connected component with
the most ink, weighted towards the middle of the picture where people aim (in a photo, what
touches the frame is not a candidate, nor is a flat line: what is left of a rule, a page's
edge), together with the pieces near it (a 5's hat, a broken stroke), but not a box drawn
around it (a form's field); specks elsewhere are left.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from app.errors import NoDigitFound
from app.imaging.frame import fills_the_picture, touches_frame
from app.imaging.ink import MIN_PHOTO, Ink
from model.mnist_style import stroke_width

LINE_SPAN = 0.75  # a ruled line crosses at least this much of the picture
LINE_GAP = 0.5  # of the shorter side: a rule interrupted by a broad digit this wide is one line still
LINE_WIDTH = 0.012  # and is thinner than this (of the picture's side), unlike a close-up's stroke
MIN_LINE_WIDTH = 3.5  # px: a blurred rule is this wide even on a small picture
LINE_TILT = np.deg2rad(30)  # and runs within this of horizontal or vertical (a page turned, tilted)
LINE_BAND = 5  # px: the band along a segment that its ink is read from
RULED_SPAN = 0.4  # of the shorter side: a shorter line that is still a rule when it is one of a ruling
RULING = 3  # lines of one direction, at different places, make a ruling
RULING_GAP = 0.04  # of the shorter side: lines closer than this are one
RULING_SPREAD = 0.2  # of the shorter side: a ruling's lines are spread this far at least
RULING_MIN_SIDE = 200  # px: in a smaller picture a digit's strokes are as long, apart and solid
TEXTURE = 0.3  # of the picture: thin ink this dense is a texture or noise (squared paper: 0.13 at most)
MIN_RULE_WIDTH = 1.0  # px of ink per px of length over the noise's: a drawn rule, not a chain of specks
STROKE_OVER_RULE = 1.5  # ink this much darker than a ruling's darkest tenth is a pen stroke on it
RULE_FAN = np.deg2rad(4)  # a page's rules, seen in perspective, fan out by a few degrees
NEAR = 0.3  # pieces within this much of the digit's size from its box belong to it
MIN_PIECE = 0.03  # of the main stroke's area: smaller pieces near it are specks
FLAT = 4  # a component this many times wider than tall is a line (a rule's remnant, a page's edge)
OVERSHOOT = 0.05  # of the digit's size: a line running past both its ends by this is a frame, no stroke
BOX_MIN = 8  # px: a box around a digit is at least this big on each side
BOX_HOLLOW = 0.3  # of its bounding box: a box's ink is no more than this
BOX_HOLDS = 0.1  # of a box's ink: what it holds has at least this much (more than a speck)
BOX_BAND = 0.1  # of its smaller side: how far from its rectangle's edge a box's sides lie
BOX_SIDES = 0.8  # of each side's length: how much of it a box runs along
RING_HOLDS = 0.3  # of a closed ring's size: what it holds is at least this big (a circled digit, no speck)
FRAME_FILLING = 0.3  # of the frame's longer side: a digit running off the picture is this big at least
FRAGMENT = 0.25  # of the ink of a digit filling the picture: a candidate with less is a piece of it
STROKE_OF_SIZE = (0.03, 0.25)  # its stroke's width, of its longer side: no hairline, no broad area
FRAME_INK = 0.2  # and its mean ink level at least this: ink, not the shade of a page's edge
CENTRE_SIGMA = 0.35  # of the picture's size: how strongly components near the middle are preferred


def erase_lines(ink: Ink) -> Ink:
    """Ink without the long thin straight lines across the picture; strokes that crossed them bridged.

    A line crossing most of the picture is a rule. On a page that fills less of the frame (a desk
    around it, a tilt), the rules are shorter: where no line of a direction crosses the picture,
    a shorter line counts too when it is solid ink (far denser than the noise around it) and one
    of a ruling: at least `RULING` such lines of its direction, well apart and spread over a good
    part of the picture, which a digit's straight strokes never make. A ruling's lines are erased
    from edge to edge, the pieces beside the digit too. A picture too small to show a ruling's
    lines apart from the digit's strokes gets no such search. Where lines do cross the picture,
    the shorter lines parallel to them are the rest of their ruling (`rest_of_ruling`). A picture
    under `MIN_PHOTO` (an MNIST-sized digit, an icon) is searched for no line at all: a stroke
    crosses most of it (a 1, a 4's stem). Nor is a texture or noise (`TEXTURE`), where Hough's
    transform would find hundreds of lines, each erased and bridged in turn, for a second of work.
    """
    h, w = ink.weak.shape
    side = min(h, w)
    if side < MIN_PHOTO:
        return ink
    weak = ink.weak.astype(np.uint8)
    width = max(3, int(LINE_WIDTH * side) | 1)
    thin = weak & ~cv2.morphologyEx(weak, cv2.MORPH_OPEN, np.ones((width, width), np.uint8))
    if thin.mean() > TEXTURE:
        return ink
    across = [
        s for s in straight_lines(ink, thin, LINE_SPAN) if s.extent >= LINE_SPAN * (w if s.horizontal else h)
    ]
    erase = [(band(s.ends, ink.weak), s.horizontal) for s in across]
    ruled = {s.horizontal for s in across}
    unruled = {True, False} - ruled  # the directions no line crosses
    shorter = straight_lines(ink, thin, RULED_SPAN) if ruled or side >= RULING_MIN_SIDE else []
    for horizontal in ruled:
        rules = [s for s in across if s.horizontal == horizontal]
        erase += [(band(s.ends, ink.weak), horizontal) for s in rest_of_ruling(rules, shorter)]
    if side >= RULING_MIN_SIDE and unruled:
        noise = LINE_BAND * float(ink.weak.mean())  # ink per px of length a band over noise alone holds
        for horizontal in unruled:
            family = [
                s for s in shorter if s.horizontal == horizontal and s.density >= MIN_RULE_WIDTH + noise
            ]
            places = sorted({int(s.place // (RULING_GAP * side)) for s in family})
            if len(places) >= RULING and (places[-1] - places[0]) * RULING_GAP >= RULING_SPREAD:
                erase += [(band(s.ends, ink.weak, edge_to_edge=True), horizontal) for s in family]
    level = ink.level
    if erase:
        pen = pen_on_the_rules(ink.level, [line for line, _ in erase])
        for line, horizontal in erase:
            gap = line & ~pen
            level = bridge(np.where(gap, 0.0, level).astype(np.float32), gap, horizontal)
    return replace(ink, level=level)


def pen_on_the_rules(level: np.ndarray, rules: list[np.ndarray]) -> np.ndarray:
    """The ink far darker than the rules: a pen stroke along or across a printed rule, which
    erasing the rule (and bridging only across it) would lose: a 7's bar, a 4's arm, a 9's loop
    drawn on a line of squared paper. A page's rules are printed in one ink, so their darkness is
    read from all of them at once (their darkest tenth): a stroke that Hough's transform took for
    a rule of its own still stands out of them. Rules as dark as the pen keep nothing."""
    ruling = np.logical_or.reduce(rules)
    return level > STROKE_OVER_RULE * float(np.percentile(level[ruling], 90))


def rest_of_ruling(rules: list[Segment], shorter: list[Segment]) -> list[Segment]:
    """The shorter lines of the direction `rules` cross the picture in that are parallel to them.

    On a page smaller than the frame (a desk around it, a tilt), only some of its rules cross
    three quarters of the picture; the others, as long on the page, are as much rules and would
    otherwise join the digit they cross to the page's edge. Hough's transform finds a line
    again in pieces: a line that lies on one already taken is left out, so that a digit's
    stroke beside a rule is not eaten by a second band.
    """
    low = min(s.tilt for s in rules) - RULE_FAN
    high = max(s.tilt for s in rules) + RULE_FAN
    taken = list(rules)
    for s in shorter:
        parallel = s.horizontal == rules[0].horizontal and low <= s.tilt <= high
        if parallel and not any(s.lies_on(t) for t in taken):
            taken.append(s)
    return taken[len(rules) :]


@dataclass(frozen=True)
class Segment:
    """A straight run of ink that Hough's transform found."""

    ends: tuple[int, int, int, int]  # x0, y0, x1, y1
    horizontal: bool  # or vertical
    density: float  # px of ink per px of its length, in a band `LINE_BAND` wide
    place: float  # px: where it runs across
    extent: int  # px: how far it runs along

    @property
    def tilt(self) -> float:
        """Radians from its axis (the x axis for a horizontal line, the y axis for a vertical one)."""
        x0, y0, x1, y1 = self.ends
        along, across = (x1 - x0, y1 - y0) if self.horizontal else (y1 - y0, x1 - x0)
        return float(np.arctan(across / along))

    def lies_on(self, other: Segment) -> bool:
        """Both ends within `LINE_BAND` px of the other's line: the same line, found again."""
        x0, y0, x1, y1 = other.ends
        length = max(float(np.hypot(x1 - x0, y1 - y0)), 1.0)
        return all(
            abs((x1 - x0) * (y0 - y) - (x0 - x) * (y1 - y0)) / length < LINE_BAND
            for x, y in (self.ends[:2], self.ends[2:])
        )


def straight_lines(ink: Ink, thin: np.ndarray, span: float) -> list[Segment]:
    """Thin segments at least `span` of the shorter side long, near horizontal or vertical."""
    side = min(thin.shape)
    length, gap = span * side, LINE_GAP * side
    segments = cv2.HoughLinesP(thin, 1, np.pi / 360, int(length / 2), minLineLength=length, maxLineGap=gap)
    found = []
    for x0, y0, x1, y1 in [] if segments is None else segments.reshape(-1, 4).tolist():
        angle = np.arctan2(abs(y1 - y0), abs(x1 - x0))
        horizontal = angle < LINE_TILT
        if not (horizontal or angle > np.pi / 2 - LINE_TILT):
            continue
        density = band((x0, y0, x1, y1), ink.weak).sum() / np.hypot(x1 - x0, y1 - y0)
        if density < max(MIN_LINE_WIDTH, LINE_WIDTH * side):
            place, extent = ((y0 + y1) / 2, abs(x1 - x0)) if horizontal else ((x0 + x1) / 2, abs(y1 - y0))
            found.append(Segment((x0, y0, x1, y1), horizontal, density, place, extent))
    return found


def band(ends: tuple[int, int, int, int], weak: np.ndarray, edge_to_edge: bool = False) -> np.ndarray:
    """The ink in a band `LINE_BAND` px wide along a segment, or along its whole line across the picture."""
    x0, y0, x1, y1 = ends
    if edge_to_edge:
        reach = sum(weak.shape) / max(np.hypot(x1 - x0, y1 - y0), 1.0)
        x0, y0, x1, y1 = (
            x0 - (x1 - x0) * reach,
            y0 - (y1 - y0) * reach,
            x1 + (x1 - x0) * reach,
            y1 + (y1 - y0) * reach,
        )
    line = cv2.line(np.zeros(weak.shape, np.uint8), (int(x0), int(y0)), (int(x1), int(y1)), 1, LINE_BAND)
    return line.astype(bool) & weak


def bridge(level: np.ndarray, gap: np.ndarray, horizontal: bool) -> np.ndarray:
    """Refills the erased line's pixels only where ink continues on both sides of it."""
    kernel = np.ones((9, 1) if horizontal else (1, 9), np.uint8)
    closed = cv2.morphologyEx(level, cv2.MORPH_CLOSE, kernel)
    return np.where(gap, closed, level).astype(np.float32)


def select_digit(ink: Ink) -> np.ndarray:
    """The digit's ink, cropped to its strokes and with everything else in the box set to 0.

    In a photo, what touches the frame is the page's edge, a shadow or the table, not the digit
    aimed at. Where nothing else stands out, the digit may be joined to the frame by a thread (what
    is left of an erased grid line, a hair): the threads are cut and the digit looked for again.
    Where still nothing stands out, the digit may run off the picture (a close-up whose tail is
    cut off) or fill it (a picture cropped close around the digit): what touches one side of the
    frame, or two that meet, or lies in the middle meeting the frame only where its strokes end,
    is taken when it is drawn like a stroke, thin for its size; a shadow, a desk or a dark corner
    is a broad area, runs along the frame, or lies off to one side. Nor does a piece cut off a
    digit that fills the picture stand out (`FRAGMENT`).
    """
    photo = not ink.flat and min(ink.weak.shape) >= MIN_PHOTO
    try:
        return pick_digit(ink, ink.weak, photo)
    except NoDigitFound:
        if not photo:
            raise
    try:
        return pick_digit(ink, cut_from_frame(ink.weak), photo)
    except NoDigitFound:
        return pick_digit(ink, ink.weak, photo, strokes_off_the_frame=True)


def pick_digit(ink: Ink, weak: np.ndarray, photo: bool, strokes_off_the_frame: bool = False) -> np.ndarray:
    """The component of `weak` with the most ink, weighted towards the middle, and the pieces near it.

    No digit is a line `FLAT` times wider than tall, so such a component does not lead, though it
    may join the digit as a piece near it (a 7's bar, a 5's hat). A box around another candidate
    is neither (`boxes`).
    """
    h, w = weak.shape
    count, labels, stats, centres = cv2.connectedComponentsWithStats(weak.astype(np.uint8), connectivity=8)
    has_core = np.bincount(labels[ink.strong], minlength=count) > 0
    if photo:
        touching = touches_frame(stats, h, w)
        if strokes_off_the_frame:
            off_or_filling = touches_one_side_or_corner(stats, h, w) | fills_the_picture(labels, centres)
            touching &= ~(off_or_filling & stroke_like(labels, stats, ink.level))
        has_core &= ~touching
    has_core &= ~boxes(labels, stats, has_core)
    mass = np.bincount(labels.ravel(), weights=ink.level.ravel(), minlength=count)
    offset = ((centres[:, 0] - w / 2) / w) ** 2 + ((centres[:, 1] - h / 2) / h) ** 2
    line = stats[:, 2] > FLAT * stats[:, 3]  # may join the digit as a piece (a 7's bar), not be it
    score = mass * np.exp(-offset / (2 * CENTRE_SIGMA**2)) * has_core * ~line
    score[0] = 0  # the background
    main = int(score.argmax())
    if score[main] <= 0 or max(stats[main, 2], stats[main, 3]) < max(3, 0.03 * max(h, w)):
        raise NoDigitFound("no digit found: nothing but specks stands out from the background")
    if photo and not strokes_off_the_frame:
        filling = touching & fills_the_picture(labels, centres)
        if filling.any():
            filling &= stroke_like(labels, stats, ink.level)
        if filling.any() and mass[main] < FRAGMENT * mass[filling].max():
            raise NoDigitFound("no digit found: only a piece cut off the ink that fills the picture")
    chosen = pieces_near(stats, has_core, main)
    top, left = stats[chosen, 1].min(), stats[chosen, 0].min()
    bottom = (stats[chosen, 1] + stats[chosen, 3]).max()
    right = (stats[chosen, 0] + stats[chosen, 2]).max()
    keep = np.isin(labels[top:bottom, left:right], chosen)
    return np.where(keep, ink.level[top:bottom, left:right], 0.0).astype(np.float32)


def boxes(labels: np.ndarray, stats: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The candidates that are a box or a ring drawn around another: a form's field, a circled digit.

    A box is hollow, holds another candidate with a good share of its ink, and runs along all four
    sides of the rectangle around it into its corners, or closes around a candidate `RING_HOLDS`
    of its size or more. No digit does all that: a 0 leaves its rectangle's corners empty and
    holds nothing but specks or its own short tail.
    """
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    found = np.zeros(len(stats), bool)
    for i in np.flatnonzero(candidates & (bw >= BOX_MIN) & (bh >= BOX_MIN) & (area < BOX_HOLLOW * bw * bh)):
        inside = (x > x[i]) & (y > y[i]) & (x + bw < x[i] + bw[i]) & (y + bh < y[i] + bh[i])
        if not (candidates & inside & (area >= BOX_HOLDS * area[i])).any():
            continue
        crop = labels[y[i] : y[i] + bh[i], x[i] : x[i] + bw[i]]
        held = candidates & inside & (np.maximum(bw, bh) >= RING_HOLDS * max(bw[i], bh[i]))
        found[i] = runs_along_its_sides(crop == i) or any(
            encloses(crop == i, crop == j) for j in np.flatnonzero(held)
        )
    return found


def encloses(outline: np.ndarray, other: np.ndarray) -> bool:
    """Whether `other` lies in a hole of `outline` (both cropped to the outline's bounding box)."""
    outside = np.pad(~outline, 1, constant_values=True).astype(np.uint8)
    cv2.floodFill(outside, None, (0, 0), 2)  # what the frame reaches without crossing the outline
    return bool(other.any()) and not (outside[1:-1, 1:-1][other] == 2).any()


def runs_along_its_sides(outline: np.ndarray) -> bool:
    """Whether the ink reaches every corner of the smallest rectangle around it (turned as the page
    is) and runs along `BOX_SIDES` of each side, within `BOX_BAND` of its smaller side. A round
    or squarish 0 leaves the corners empty."""
    points = np.column_stack(np.nonzero(outline)[::-1]).astype(np.float32)  # (x, y)
    rectangle = cv2.minAreaRect(points)
    band = max(2.0, BOX_BAND * min(rectangle[1]))
    margin = max(outline.shape) // 2 + 1  # room for the corners of a turned rectangle
    padded = np.pad(outline, margin)
    away = cv2.distanceTransform((~padded).astype(np.uint8), cv2.DIST_L2, 3)  # px to the nearest ink
    corners = cv2.boxPoints(rectangle) + margin
    for start, end in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        cols, rows = np.linspace(start, end, 50).round().astype(int).T
        near = away[rows, cols] <= band
        if not near[0] or float(near.mean()) < BOX_SIDES:
            return False
    return True


def cut_from_frame(weak: np.ndarray) -> np.ndarray:
    """The ink, with what touches the frame opened (threads under 3 px cut), the rest as it is."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(weak.astype(np.uint8), connectivity=8)
    touching = touches_frame(stats, *weak.shape)
    touching[0] = False
    if not touching.any():
        return weak
    joined = touching[labels]
    opened = cv2.morphologyEx(joined.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return (weak & ~joined) | opened.astype(bool)


def touches_one_side_or_corner(stats: np.ndarray, h: int, w: int) -> np.ndarray:
    """Touching one side of the frame, or two that meet at a corner: not running across it."""
    x, y, bw, bh = (stats[:, i] for i in range(4))
    left, top, right, bottom = x == 0, y == 0, x + bw == w, y + bh == h
    return ~(left & right) & ~(top & bottom)


def stroke_like(labels: np.ndarray, stats: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Of the components touching the frame, those drawn like a digit that fills the picture: a
    good part of the frame's size, dark as ink rather than a shade, and a stroke's width for its
    size, neither a hairline (a grid line, wood grain) nor a broad area (a shadow, a dark corner)."""
    like = np.zeros(len(stats), bool)
    frame = max(labels.shape)
    for i in np.flatnonzero(touches_frame(stats, *labels.shape)):
        size = max(stats[i, 2], stats[i, 3])
        if i > 0 and size >= FRAME_FILLING * frame:
            component = labels == i
            inked = float(level[component].mean()) >= FRAME_INK
            like[i] = inked and STROKE_OF_SIZE[0] <= stroke_width(component) / size <= STROKE_OF_SIZE[1]
    return like


def pieces_near(stats: np.ndarray, has_core: np.ndarray, main: int) -> np.ndarray:
    """The main component and those that reach into its box grown by `NEAR` of its size (twice).

    A line that runs past both ends of the digit's box along its length (a side of a box whose
    corners broke, a rule's remnant) is no piece of it: a 7's bar or a 5's hat ends at the stem.
    """
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    candidates = has_core & (area >= MIN_PIECE * area[main])
    candidates[0] = False
    left, top, right, bottom = x[main], y[main], x[main] + bw[main], y[main] + bh[main]
    reach = OVERSHOOT * max(bw[main], bh[main])
    across = (bw > FLAT * bh) & (x < left - reach) & (x + bw > right + reach)
    down = (bh > FLAT * bw) & (y < top - reach) & (y + bh > bottom + reach)
    candidates &= ~(across | down)
    chosen = np.zeros_like(candidates)
    chosen[main] = True
    for _ in range(2):
        margin = NEAR * max(right - left, bottom - top)
        near = (
            (x < right + margin) & (x + bw > left - margin) & (y < bottom + margin) & (y + bh > top - margin)
        )
        chosen |= candidates & near
        left, top = x[chosen].min(), y[chosen].min()
        right, bottom = (x + bw)[chosen].max(), (y + bh)[chosen].max()
    return np.flatnonzero(chosen)
