"""Photos as people take them: every kind of degradation still gives the digit, in bounded memory.

The photos come from bench/photo_digits.py (MNIST test digits redrawn with a pen on paper or a
board, fixed seeds), from the independently written bench/photo_scenes.py (perspective, a
desk around the page, fat markers, squared paper...) and from bench/photo_enlarged.py (the
digits' own broad strokes enlarged); the digits are read by the shipped model, skipped until it
exists.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from app.errors import NoDigitFound
from app.imaging import Layout, prepare
from app.imaging.decode import DECODE_BUDGET, decode, to_grey
from app.imaging.ink import (
    commonness,
    find_ink,
    flatten,
    flattened_grey,
    ink_of,
    level_shares,
    polarity,
    thin_features_darker,
)
from bench import photo_enlarged, photo_scenes, preprocess_cost
from bench.photo_accuracy import (
    HELD_OUT_DIGITS,
    HELD_OUT_SEEDS,
    broad_brush_drawings,
    cropped_close,
    enlarged_seed,
    jpeg_file,
    scene_seed,
)
from bench.photo_digits import RENDERINGS, Page, blank_page, jpeg, mild_noise, render, ruled_lines, shadow
from bench.photo_digits import uneven_light as light
from model.checkpoint import load_weights
from model.data import Mnist

MAX_PIXELS = 4096 * 4096
PHOTOS = 4  # of each kind; at least 3 must be read right


@pytest.fixture(scope="module")
def reader(trained_weights):
    model = load_weights(trained_weights, torch.device("cpu")).eval()
    layout = Layout.of_model({"config": model.config.to_dict(), "input": {"digit_box": 20}})

    def read(data: bytes) -> int:
        with torch.inference_mode():
            image = torch.from_numpy(prepare(data, "auto", MAX_PIXELS, layout))[None, None]
            return int(model.poses(image).norm(dim=-1).argmax())

    return read


@pytest.mark.parametrize("kind", list(RENDERINGS))
def test_each_kind_of_photo_gives_the_digit(kind: str, reader, mnist: Mnist) -> None:
    digits, labels = mnist.test.images[100 : 100 + PHOTOS], mnist.test.labels[100 : 100 + PHOTOS]
    read = [reader(render(kind, digit, seed=i)) for i, digit in enumerate(digits)]
    assert np.sum(np.array(read) == labels) >= PHOTOS - 1, (read, labels.tolist())


HARD_SCENES = [
    "small digit, big page",
    "desk around the page",
    "felt marker",
    "squared paper",
    "whiteboard",
    "everything at once",
    "digit in a form's box",
    "coloured marker",
]


@pytest.mark.parametrize("condition", HARD_SCENES)
def test_each_hard_scene_gives_the_digit(condition: str, reader, mnist: Mnist) -> None:
    digits, labels = mnist.test.images[100 : 100 + PHOTOS], mnist.test.labels[100 : 100 + PHOTOS]
    photos = [photo_scenes.render(condition, digit, seed=i) for i, digit in enumerate(digits)]
    read = [read_or_none(reader, photo) for photo in photos]
    assert np.sum(np.array(read) == labels) >= PHOTOS - 1, (read, labels.tolist())


@pytest.mark.parametrize("condition", photo_enlarged.CONDITIONS)
def test_each_enlarged_digit_photo_gives_the_digit(condition: str, reader, mnist: Mnist) -> None:
    digits, labels = mnist.test.images[100 : 100 + PHOTOS], mnist.test.labels[100 : 100 + PHOTOS]
    photos = [photo_enlarged.render(condition, digit, seed=i) for i, digit in enumerate(digits)]
    read = [read_or_none(reader, photo) for photo in photos]
    assert np.sum(np.array(read) == labels) >= PHOTOS - 1, (read, labels.tolist())


def read_or_none(reader, photo: bytes) -> int | None:
    """The digit read, or None where no digit was found (a miss, counted as wrong)."""
    try:
        return reader(photo)
    except NoDigitFound:
        return None


def test_a_lit_page_on_a_dark_desk_is_not_taken_for_light_ink(reader, mnist: Mnist) -> None:
    """Two "everything at once" scenes of the accuracy report: a page on a dark desk, a shadow over
    it. The middle of each gives no clear answer, and the whole picture's clear light tail is the
    lit page, a broad area, not ink."""
    seed = scene_seed("everything at once")
    for i in (2, 26):
        photo = photo_scenes.render("everything at once", mnist.test.images[5000 + i], seed + i)
        assert polarity(to_grey(decode(photo, MAX_PIXELS))) is not False
        assert reader(photo) == mnist.test.labels[5000 + i]


UNCLEAR_MIDDLES = [  # scenes whose middle half gives no clear answer
    ("everything at once", 41),  # a page on a dark desk, a shadow across the middle
    ("everything at once", 79),
    ("whiteboard", 44),  # glare over the middle: the whole picture only leans to dark ink
    ("whiteboard", 51),
    ("whiteboard", 57),
    ("chalkboard", 32),  # a fat chalk stroke across the middle: still light ink
    ("chalkboard", 86),
]


@pytest.mark.parametrize(("condition", "i"), UNCLEAR_MIDDLES)
def test_the_ink_is_told_from_the_surface_when_the_middle_is_unclear(
    condition: str, i: int, mnist: Mnist
) -> None:
    seed = scene_seed(condition) + i
    photo = photo_scenes.render(condition, mnist.test.images[100 + i], seed)
    assert polarity(to_grey(decode(photo, MAX_PIXELS))) is (condition != "chalkboard")


def test_a_sticky_note_on_a_dark_desk_is_read(reader, mnist: Mnist) -> None:
    """A small light note, turned a little, on a desk darker than it: the note is no light ink."""
    rng = np.random.default_rng(0)
    chosen = range(300, 310)
    read = []
    for index in chosen:
        size = int(rng.integers(100, 160))
        ink = Image.fromarray(mnist.test.images[index]).resize((size, size), Image.Resampling.BILINEAR)
        desk = 0.4 * np.linspace(0.8, 0.95, 480)[None, :] * np.ones((360, 1))
        note = np.zeros((360, 480), np.uint8)
        corners = cv2.boxPoints(((240, 180), (size + 60, size + 60), float(rng.uniform(-10, 10))))
        cv2.fillPoly(note, [corners.astype(np.int32)], 1)
        page = np.where(note > 0, 0.88, desk)
        top, left = 180 - size // 2, 240 - size // 2
        page[top : top + size, left : left + size] *= 1 - 0.85 * np.asarray(ink) / 255.0
        page += rng.normal(0, 0.015, page.shape)
        out = io.BytesIO()
        Image.fromarray(np.uint8(255 * np.clip(page, 0, 1))).save(out, "JPEG", quality=80)
        read.append(read_or_none(reader, out.getvalue()))
    labels = mnist.test.labels[chosen]
    assert np.sum(np.array(read) == labels) >= 9, (read, labels.tolist())


def test_a_digit_joined_to_the_frame_by_a_thread_is_still_found(reader, mnist: Mnist) -> None:
    """What is left of an erased grid line can join a stroke to the edge of the photo, where the
    page's edge and the desk are: the thread is cut, not the digit dropped."""
    digit, label = mnist.test.images[104], int(mnist.test.labels[104])
    ink = np.asarray(Image.fromarray(digit).resize((224, 224), Image.Resampling.BILINEAR)) / 255.0
    page = np.linspace(0.75, 0.95, 400)[None, :] * np.ones((400, 1))  # light from one side
    page[88:312, 88:312] *= 1.0 - 0.8 * ink
    rows, cols = np.nonzero(ink > 0.5)
    row = int(rows[cols.argmin()])
    page[88 + row, : 88 + int(cols.min()) + 1] *= 0.5  # a 1-px thread from the stroke to the frame
    photo = Image.fromarray(np.uint8(255 * page))
    out = io.BytesIO()
    photo.save(out, "PNG")
    assert reader(out.getvalue()) == label


def test_the_rules_of_a_page_narrower_than_the_frame_are_erased(reader, mnist: Mnist) -> None:
    """A ruled page on a desk: its rules cross 70% of the frame, not most of it, but there are many
    of them, a ruling; a rule through the digit would otherwise read as one of its strokes. (A rule
    along a stroke takes the stroke with it: a 9 whose loop's top lies on one can be lost.)"""
    digits, labels = mnist.test.images[100:120], mnist.test.labels[100:120]
    read = []
    for digit in digits:
        ink = np.asarray(Image.fromarray(digit).resize((140, 140), Image.Resampling.BILINEAR)) / 255.0
        frame = np.full((400, 600), 0.3)  # the desk
        frame[20:380, 90:510] = 0.92  # the page
        for y in range(35, 380, 28):
            frame[y : y + 2, 90:510] = 0.6  # its rules
        frame[130:270, 230:370] *= 1.0 - 0.85 * ink
        out = io.BytesIO()
        Image.fromarray(np.uint8(255 * frame)).save(out, "PNG")
        read.append(reader(out.getvalue()))
    # 2 of the 20 were read before such rules were erased; 16-18 since, by the weights shipped
    assert np.sum(np.array(read) == labels) >= 15, (read, labels.tolist())


def test_the_shorter_rules_of_a_page_in_perspective_are_erased(reader, mnist: Mnist) -> None:
    """Two "everything at once" scenes of the accuracy report: a ruled and a squared page, tilted,
    on a desk. Some of their rules cross three quarters of the frame, the others do not; one of
    those crossed the digit and joined it to a rule's remnant or the grid."""
    seed = scene_seed("everything at once")
    for i in (28, 44):
        photo = photo_scenes.render("everything at once", mnist.test.images[5000 + i], seed + i)
        assert reader(photo) == mnist.test.labels[5000 + i]


def beyond_the_report(
    condition: str, i: int, mnist: Mnist, make=photo_scenes.render, first_seed=scene_seed
) -> tuple[bytes, int]:
    """The i-th of a condition's photos (scenes unless `make` is another generator) of MNIST test
    digits 6000 on, drawn from seeds the report does not draw."""
    digit, seed = HELD_OUT_DIGITS + i, first_seed(condition) + HELD_OUT_SEEDS + i
    return make(condition, mnist.test.images[digit], seed), int(mnist.test.labels[digit])


def test_a_pen_stroke_on_a_printed_line_stays_when_the_line_goes(reader, mnist: Mnist) -> None:
    """Squared and ruled pages, turned: a 4's arm, a 9's loop, a 7's bar drawn along a line of
    the grid, and a ruling turned 25 degrees through a 3. Erasing the lines took the strokes on
    them (a 4 read as a 1, a 9 as a 7) or left the turned rules (a 3 read as a 7)."""
    for i in (19, 23, 39, 79):
        photo, label = beyond_the_report("everything at once", i, mnist)
        assert reader(photo) == label, i


def test_a_rule_broken_by_an_enlarged_digit_is_erased_beside_it(reader, mnist: Mnist) -> None:
    """Ruled pages under digits enlarged with their own broad strokes: where such a stroke crosses
    a rule, the rule showed as two pieces too short to be found, and the crop took them in (a 9
    read as a 7). Photos of test digits 6000 on, from seeds the report does not draw."""
    chosen = (18, 42, 61, 65, 67, 68, 71)
    drawn = [beyond_the_report("ruled lines", i, mnist, photo_enlarged.render, enlarged_seed) for i in chosen]
    assert [read_or_none(reader, photo) for photo, _ in drawn] == [label for _, label in drawn]


BROAD_STROKES_IN_SHADOW = [  # held-out enlarged digits whose histogram is unclear, thin features light
    ("shadow", 4),
    ("shadow", 28),
    ("shadow", 29),
    ("shadow", 70),
    ("all at once", 17),
]


@pytest.mark.parametrize(("condition", "i"), BROAD_STROKES_IN_SHADOW)
def test_broad_dark_strokes_under_a_shadow_are_not_taken_for_light_ink(
    condition: str, i: int, reader, mnist: Mnist
) -> None:
    """A shadow's edge leaves the histogram no clear tail, and between strokes as broad as these
    the paper is the strongest light thin feature: it was taken for light ink (an 8 read as a 0).
    The paper's grey level is the picture's commonest, the ink's a rare one, so the ink is dark.
    Photos of test digits 6000 on, from seeds the report does not draw."""
    photo, label = beyond_the_report(condition, i, mnist, photo_enlarged.render, enlarged_seed)
    grey = to_grey(decode(photo, MAX_PIXELS))
    assert polarity(grey) is None and not thin_features_darker(grey)
    assert read_or_none(reader, photo) == label


def test_chalk_is_a_rarer_grey_than_its_board(mnist: Mnist) -> None:
    """The second cue light ink needs, where the histogram is unclear: on a chalkboard the chalk's
    grey levels are rarer than those of the dark features between its strokes."""
    seed = scene_seed("chalkboard")
    for i in range(8):
        grey = to_grey(
            decode(photo_scenes.render("chalkboard", mnist.test.images[100 + i], seed + i), MAX_PIXELS)
        )
        shares = level_shares(grey)
        assert commonness(shares, *flatten(grey, False)) < commonness(shares, *flatten(grey, True)), i


def test_a_fat_marker_on_unevenly_lit_paper_is_read_whole(reader, mnist: Mnist) -> None:
    """Felt-marker digits whose strokes are wider than the narrow background window that uneven
    light calls for: measured on that window's result, the hollowed strokes looked thin, and the
    window stayed narrow and took their middles for paper."""
    chosen = (17, 63, 64, 67, 83, 86, 90, 92, 94, 96)
    read = [read_or_none(reader, beyond_the_report("felt marker", i, mnist)[0]) for i in chosen]
    labels = [int(mnist.test.labels[HELD_OUT_DIGITS + i]) for i in chosen]
    assert np.sum(np.array(read) == labels) >= 9, (read, labels)


BROAD_OR_FADED = {  # held-out scenes read wrong while strokes kept their width and uneven strength
    "felt marker": (43, 71, 81, 91, 93),  # strokes broader than any MNIST digit's
    "whiteboard": (0, 3, 43, 54, 64, 85, 91, 93, 98),  # broad, and washed out under glare
    "pencil": (53, 81, 85, 91),  # pressed lightly in places
}


@pytest.mark.parametrize("condition", list(BROAD_OR_FADED))
def test_broad_and_faded_strokes_are_read_at_mnists_width_and_strength(
    condition: str, reader, mnist: Mnist
) -> None:
    chosen = BROAD_OR_FADED[condition]
    photos = [beyond_the_report(condition, i, mnist) for i in chosen]
    read = [read_or_none(reader, photo) for photo, _ in photos]
    labels = [label for _, label in photos]
    assert np.sum(np.array(read) == labels) >= len(chosen) - 1, (read, labels)


def test_coloured_marker_washed_out_under_glare_is_read_in_its_darkest_channel(reader, mnist: Mnist) -> None:
    """Held-out whiteboard scenes in green or red marker that glare washes towards white: in grey
    part of each stroke fades into the board (a 7 read as a 1, a 0 as a C); in the channel of the
    colour the marker absorbs the stroke stays whole."""
    chosen = (25, 48, 50, 51, 72)
    photos = [beyond_the_report("whiteboard", i, mnist) for i in chosen]
    read = [read_or_none(reader, photo) for photo, _ in photos]
    labels = [label for _, label in photos]
    assert np.sum(np.array(read) == labels) >= len(chosen) - 1, (read, labels)


@pytest.mark.parametrize(
    ("condition", "i"), [("coloured marker", 16), ("coloured marker", 84), ("whiteboard", 81)]
)
def test_a_fat_marker_under_glare_is_dark_ink(condition: str, i: int, mnist: Mnist) -> None:
    """Held-out scenes whose whole picture leans dark by only 1.3-1.4 times (a fat stroke, glare
    across the middle): the glare inside the stroke, the strongest light thin feature, made them
    light ink on a dark board."""
    photo, _ = beyond_the_report(condition, i, mnist)
    assert flattened_grey(to_grey(decode(photo, MAX_PIXELS)))[2]


def test_a_digit_drawn_with_a_broad_brush_is_read_at_mnists_width(reader, mnist: Mnist) -> None:
    """Test digits drawn on a canvas with a brush a fifth of its width: misread while their strokes
    kept that width."""
    chosen = [63, 78, 80, 167, 187, 206]
    drawings = list(broad_brush_drawings(mnist.test.images[chosen], mnist.test.labels[chosen]))
    read = [reader(drawing) for drawing, _ in drawings]
    labels = [label for _, label in drawings]
    assert np.sum(np.array(read) == labels) >= len(chosen) - 1, (read, labels)


def test_a_broad_drawing_that_runs_off_the_canvas_is_found(reader, mnist: Mnist) -> None:
    """A 9 drawn with a broad brush, its filled loop and its tail running off the canvas's bottom
    edge: the border is one exact level but where the drawing crosses it, so the picture is a
    rendering, not a photo whose frame only a desk or a shadow touches."""
    drawing, label = next(broad_brush_drawings(mnist.test.images[906:907], mnist.test.labels[906:907]))
    assert reader(drawing) == label


def test_a_line_with_more_ink_than_the_digit_is_not_taken_for_it(reader, mnist: Mnist) -> None:
    """A page's edge or what is left of a rule can hold more ink than a small digit beside it, but
    a component many times wider than tall is no digit."""
    read = []
    for digit in mnist.test.images[100:110]:
        ink = np.asarray(Image.fromarray(digit).resize((70, 70), Image.Resampling.BILINEAR)) / 255.0
        page = np.linspace(0.8, 0.95, 400)[None, :] * np.ones((300, 1))
        page[95:165, 165:235] *= 1.0 - 0.85 * ink
        page[200:210, 60:340] *= 0.4  # a dark line 28 times wider than tall, with more ink
        out = io.BytesIO()
        Image.fromarray(np.uint8(255 * page)).save(out, "PNG")
        read.append(reader(out.getvalue()))
    assert np.sum(np.array(read) == mnist.test.labels[100:110]) >= 9, read


def box(page: np.ndarray) -> None:
    """A form's printed field around the digit, 2 px wide."""
    page[70:230, 120:280][[0, 1, -2, -1]] = 0.35  # its top and bottom
    page[70:230, 120:280][:, [0, 1, -2, -1]] = 0.35  # and its sides


def ring(page: np.ndarray) -> None:
    """A circle drawn around the digit."""
    page[cv2.circle(np.zeros(page.shape, np.uint8), (200, 150), 85, 1, 3).astype(bool)] = 0.2


def box_broken_at_its_corners(page: np.ndarray) -> None:
    """A faint printed box, in four lines that each run past both ends of the digit."""
    page[[70, 71, 228, 229], 125:275] = 0.35  # the top and the bottom, short of the corners
    page[75:225][:, [120, 121, 278, 279]] = 0.35  # the sides


@pytest.mark.parametrize("frame", [box, ring, box_broken_at_its_corners])
def test_a_digit_framed_on_the_page_is_read_without_its_frame(frame, reader, mnist: Mnist) -> None:
    """A frame around a digit is near it but no part of it: no stroke of a digit closes around
    the rest or runs past both its ends."""
    read = []
    for digit in mnist.test.images[200:210]:
        ink = np.asarray(Image.fromarray(digit).resize((120, 120), Image.Resampling.BILINEAR)) / 255.0
        page = np.linspace(0.8, 0.95, 400)[None, :] * np.ones((300, 1))
        page[90:210, 140:260] *= 1.0 - 0.85 * ink
        frame(page)
        out = io.BytesIO()
        Image.fromarray(np.uint8(255 * page)).save(out, "PNG")
        read.append(reader(out.getvalue()))
    assert np.sum(np.array(read) == mnist.test.labels[200:210]) >= 9, read


def test_a_close_up_whose_digit_runs_off_the_picture_is_read(reader, mnist: Mnist) -> None:
    """A digit too big for the frame touches its edge, where a photo's page edges and desks are;
    drawn like a stroke, and nothing else there, it is the digit."""
    chosen = [i for i, label in enumerate(mnist.test.labels) if label in (4, 7, 9)][:12]
    read = []
    for index in chosen:
        ink = np.asarray(
            Image.fromarray(mnist.test.images[index]).resize((560, 560), Image.Resampling.BILINEAR)
        )
        page = np.linspace(0.8, 0.95, 400)[None, :] * np.ones((400, 1))  # light from one side
        page *= 1.0 - 0.85 * ink[60:460, 80:480] / 255.0  # the tail runs off the bottom
        out = io.BytesIO()
        Image.fromarray(np.uint8(255 * page)).save(out, "PNG")
        read.append(read_or_none(reader, out.getvalue()))
    assert read == mnist.test.labels[chosen].tolist()


@pytest.mark.parametrize("dark_ink", [True, False], ids=["dark ink", "light ink"])
def test_a_picture_cropped_close_around_its_digit_is_read(dark_ink: bool, reader, mnist: Mnist) -> None:
    """Cropped to the digit, its strokes touch the frame where a photo's desks and shadows do, and
    its fat strokes leave the paper between them as thin as a pen line; centred, meeting the frame
    only where its strokes end, it is the digit (half of these were "no digit found")."""
    chosen = range(1, 41, 2)
    read = []
    for index, side in zip(chosen, [64, 200] * 10, strict=False):
        digit = cropped_close(mnist.test.images[index], side)
        read.append(read_or_none(reader, jpeg_file(255 - digit if dark_ink else digit)))
    assert np.sum(np.array(read) == mnist.test.labels[chosen]) >= 18, read


def test_the_broad_strokes_of_a_digit_cropped_close_are_not_hollowed(mnist: Mnist) -> None:
    """The paper's level is estimated with a window twice as wide as the widest stroke, measured
    on ink that does not touch the frame (a desk, a shadow), but a digit cropped close touches it:
    measured without its strokes, the window fell inside them and took their middle for paper."""
    kept = []
    for index in range(0, 48, 4):
        crop = cropped_close(mnist.test.images[index], 64)
        ink = find_ink(to_grey(decode(jpeg_file(255 - crop), MAX_PIXELS)))
        kept.append(float((ink.level[crop > 128] > ink.cut).mean()))  # of the strokes' cores
    assert np.mean(kept) > 0.9 and min(kept) > 0.8, np.round(kept, 2)


def test_broad_light_strokes_cropped_close_are_not_taken_for_dark_ink(reader, mnist: Mnist) -> None:
    """Light strokes as broad as these fill a picture cropped close: the histogram has no clear
    tail, and the board between them is the strongest dark thin feature, but reading the ink as
    dark finds none. Test digits whose close crops came out so (all were "no digit found")."""
    ambiguous, read = 0, []
    for index in (3, 61, 68, 81, 93, 102, 128, 130, 131, 147, 171):
        for side in (64, 200):
            photo = jpeg_file(cropped_close(mnist.test.images[index], side))
            grey = to_grey(decode(photo, MAX_PIXELS))
            if polarity(grey) is None and thin_features_darker(grey):
                ambiguous += 1
                assert not ink_of(*flatten(grey, True)).strong.any()
                read.append(read_or_none(reader, photo) == mnist.test.labels[index])
    assert ambiguous >= 12 and sum(read) >= 0.8 * ambiguous, (ambiguous, read)


@pytest.mark.parametrize("desk", ["around", "beside"])
def test_a_blank_page_on_a_desk_has_no_digit(desk: str) -> None:
    """A dark desk around the page, or a strip of it beside the page, touches the frame as a digit
    cropped close does, and is as broad as a stroke for its size, but runs along the frame or lies
    off to one side."""
    page = np.linspace(200, 235, 400)[None, :] * np.ones((300, 1))
    if desk == "around":
        page[:24], page[-24:], page[:, :30], page[:, -30:] = 50, 50, 50, 50
    else:
        page[:, :36] = 50
    page += np.random.default_rng(0).normal(0, 3, page.shape)
    with pytest.raises(NoDigitFound, match="no digit found"):
        prepare(jpeg_file(np.uint8(np.clip(page, 0, 255))), "auto", MAX_PIXELS, Layout(28, 20))


@pytest.mark.parametrize("condition", ["plain paper, pen", "whiteboard"])
def test_a_blank_scene_has_no_digit(condition: str) -> None:
    photo = photo_scenes.render(condition, np.zeros((28, 28), np.uint8), seed=3)
    with pytest.raises(NoDigitFound, match="no digit found"):
        prepare(photo, "auto", MAX_PIXELS, Layout(28, 20))


@pytest.mark.parametrize("degrade", [light, shadow, ruled_lines], ids=["uneven light", "shadow", "ruled"])
def test_a_blank_page_has_no_digit(degrade) -> None:
    rng = np.random.default_rng(1)
    page = Page(blank_page(rng, 640, 480, (0.9, 0.9, 0.88)), digit_height=200)
    with pytest.raises(NoDigitFound, match="no digit found"):
        prepare(jpeg(mild_noise(degrade(page, rng), rng), rng), "auto", MAX_PIXELS, Layout(28, 20))


def test_a_transparent_4096x4096_png_is_decoded_without_its_full_size_frame() -> None:
    extra = preprocess_cost.measure_in_subprocess(preprocess_cost.transparent_png())
    assert extra <= DECODE_BUDGET // 2, f"{extra / 2**20:.1f} MiB"  # its RGBA frame alone: 64 MiB


def test_a_large_palette_png_is_reduced_without_a_full_size_colour_copy() -> None:
    extra = preprocess_cost.measure_in_subprocess(preprocess_cost.palette_png())
    assert extra <= 4096 * 4096 * 2, f"{extra / 2**20:.1f} MiB"  # the 1-byte frame and one plane


def test_a_12_megapixel_jpeg_is_decoded_at_reduced_scale() -> None:
    image = Image.new("RGB", (4000, 3000), (210, 205, 200))
    data = preprocess_cost.encode(image, "JPEG", quality=90)
    assert preprocess_cost.measure_in_subprocess(data) < 16 * 2**20


PALE_INKS = {"pink": (245, 205, 215), "yellow": (235, 215, 160), "green": (200, 225, 205)}


@pytest.mark.parametrize("colour", list(PALE_INKS))
def test_pale_coloured_ink_is_read_where_its_grey_hardly_differs_from_the_board(
    colour: str, reader, mnist: Mnist
) -> None:
    """A highlighter or a pale marker on a white board: in grey its strokes are within a tenth of
    the board's brightness, too faint to be told from it; in their darkest colour channel they
    stand out twice as far."""
    ink = np.array(PALE_INKS[colour], np.float32)
    digits, labels = mnist.test.images[100 : 100 + PHOTOS], mnist.test.labels[100 : 100 + PHOTOS]
    read = []
    for i, digit in enumerate(digits):
        strokes = np.zeros((400, 400, 1), np.float32)
        strokes[80:320, 80:320, 0] = cv2.resize(digit, (240, 240), interpolation=cv2.INTER_CUBIC) / 255
        board = 235 + np.random.default_rng(i).normal(0, 2, (400, 400, 3))
        photo = board * (1 - np.clip(strokes, 0, 1)) + ink * np.clip(strokes, 0, 1)
        out = io.BytesIO()
        Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
        read.append(read_or_none(reader, out.getvalue()))
    assert np.sum(np.array(read) == labels) >= PHOTOS - 1, (read, labels.tolist())
