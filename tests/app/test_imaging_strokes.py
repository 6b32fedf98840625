"""Which lines are a ruling and what erasing them keeps; which components are boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.imaging.ink import Ink
from app.imaging.strokes import Segment, boxes, erase_lines, rest_of_ruling, select_digit


def horizontal(x0: int, y0: int, x1: int, y1: int) -> Segment:
    return Segment((x0, y0, x1, y1), True, density=1.5, place=(y0 + y1) / 2, extent=abs(x1 - x0))


def test_a_shorter_line_parallel_to_the_rules_is_one_of_them() -> None:
    rules = [horizontal(0, 100, 400, 110), horizontal(0, 200, 400, 214)]  # fanning: 1.4 and 2.0 degrees
    shorter = horizontal(60, 50, 300, 57)  # 1.7 degrees, a third of the way down
    assert rest_of_ruling(rules, [shorter]) == [shorter]


def test_a_line_at_another_angle_is_not() -> None:
    rules = [horizontal(0, 100, 400, 110), horizontal(0, 200, 400, 214)]
    stroke = horizontal(60, 50, 200, 80)  # 12 degrees: a digit's stroke, not a rule
    assert rest_of_ruling(rules, [stroke]) == []


def test_a_rule_found_again_in_pieces_is_taken_once() -> None:
    rules = [horizontal(0, 100, 400, 110)]
    piece = horizontal(50, 102, 300, 108)  # on the rule, found again by Hough's transform
    other = horizontal(20, 150, 380, 159)
    again = horizontal(30, 151, 200, 155)  # a piece of `other`
    assert rest_of_ruling(rules, [piece, other, again]) == [other]


def test_vertical_lines_do_not_join_a_horizontal_ruling() -> None:
    rules = [horizontal(0, 100, 400, 110)]
    vertical = Segment((100, 0, 102, 300), False, density=1.5, place=101.0, extent=300)
    assert rest_of_ruling(rules, [vertical]) == []


def ruled_page(angle: float, rule: float) -> np.ndarray:
    """(400, 600) ink levels: rules `rule` dark, 2 px wide, 40 px apart, turned `angle` degrees."""
    level = np.zeros((400, 600), np.float32)
    slope = np.tan(np.deg2rad(angle))
    for y in range(-300, 700, 40):
        cv2.line(level, (0, y), (599, int(y + 599 * slope)), rule, 2)
    return level


def test_a_pen_stroke_along_a_faint_rule_is_kept_when_the_rule_is_erased() -> None:
    """A 7's bar drawn on a printed rule, four times darker than it: the rule goes, the bar stays."""
    level = ruled_page(0, 0.2)
    level[137:144, 190:250] = 0.8  # the bar, over the rule at y = 140
    level[140:240, 244:250] = 0.8  # the stem
    erased = erase_lines(Ink(level, floor=0.1, cut=0.5, flat=False)).level
    assert erased[100].max() < 0.1 and erased[140, :140].max() < 0.1  # the rules
    assert (erased[137:144, 190:250] > 0.5).mean() > 0.95  # the bar


def test_a_rule_as_dark_as_the_pen_is_erased_with_what_runs_along_it() -> None:
    level = ruled_page(0, 0.8)
    level[137:144, 190:250] = 0.8
    level[140:240, 244:250] = 0.8
    erased = erase_lines(Ink(level, floor=0.1, cut=0.5, flat=False)).level
    assert erased[100].max() < 0.1 and (erased[180:220, 244:250] > 0.5).all()  # the stem stays


def test_the_rules_of_a_page_turned_25_degrees_are_erased() -> None:
    level = ruled_page(25, 0.5)
    level[100:200, 197:203] = 0.9  # a 1
    erased = erase_lines(Ink(level, floor=0.1, cut=0.3, flat=False)).level
    rules = (level > 0.1) & (level < 0.9)
    rules[:, :150] = rules[:, 450:] = False  # the middle half, where the digit is
    assert (erased[rules] > 0.1).mean() < 0.02
    assert (erased[100:200, 197:203] > 0.5).mean() > 0.95


def test_a_rule_cut_short_by_a_broad_stroke_is_erased_on_both_sides_of_it() -> None:
    """An enlarged digit's fat base lying along a rule: the rule shows as two short pieces beside
    it, each shorter than a ruling's lines are looked for, so it is found whole across the gap."""
    level = ruled_page(0, 0.3)[:, :400]
    cv2.line(level, (140, 212), (260, 228), 0.9, 24)  # crosses the rule at y = 220 for 140 px
    erased = erase_lines(Ink(level, floor=0.1, cut=0.5, flat=False)).level
    assert erased[218:223, :125].max() < 0.1 and erased[218:223, 275:].max() < 0.1
    assert (erased[215:225, 160:240] > 0.5).mean() > 0.95  # the stroke


def test_noise_and_textures_are_not_searched_for_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thin ink over half the picture (a 1-px checkerboard, noise) is no ruled page: Hough's
    transform would find hundreds of lines there, each erased and bridged in turn."""
    monkeypatch.setattr(cv2, "HoughLinesP", lambda *args, **kwargs: pytest.fail("searched for rules"))
    rows, cols = np.mgrid[:400, :600]
    for level in [((rows + cols) % 2).astype(np.float32), np.random.default_rng(0).random((400, 600))]:
        level = level.astype(np.float32)
        assert erase_lines(Ink(level, floor=0.1, cut=0.5, flat=False)).level is level


def test_squared_paper_is_still_searched_for_rules() -> None:
    """Rules 2 px wide every 16 px both ways cover a quarter of the picture: more than the
    squared paper of any photo in the benches (an eighth at most), less than a texture."""
    level = np.zeros((400, 600), np.float32)
    level[::16], level[1::16], level[:, ::16], level[:, 1::16] = 0.4, 0.4, 0.4, 0.4
    level[100:200, 297:303] = 0.9  # a 1
    erased = erase_lines(Ink(level, floor=0.1, cut=0.5, flat=False)).level
    assert erased[32, :250].max() < 0.1 and (erased[100:200, 297:303] > 0.5).mean() > 0.95


def components(picture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(picture.astype(np.uint8), connectivity=8)
    return labels, stats


def test_a_box_drawn_around_a_digit_is_found() -> None:
    picture = np.zeros((200, 200), np.uint8)
    cv2.rectangle(picture, (20, 20), (180, 180), 1, 2)
    cv2.line(picture, (100, 60), (100, 140), 1, 6)  # a 1 inside
    labels, stats = components(picture)
    box = labels[20, 100]
    found = boxes(labels, stats, np.arange(len(stats)) > 0)
    assert found[box] and found.sum() == 1


def test_a_zero_around_a_speck_and_an_empty_box_are_not_boxes() -> None:
    picture = np.zeros((200, 200), np.uint8)
    cv2.ellipse(picture, (60, 100), (35, 60), 0, 0, 360, 1, 8)  # a 0
    picture[98:101, 58:61] = 1  # a speck inside it
    cv2.rectangle(picture, (120, 40), (190, 160), 1, 2)  # a square someone drew, nothing in it
    labels, stats = components(picture)
    assert not boxes(labels, stats, np.arange(len(stats)) > 0).any()


def test_a_slanted_zero_holding_its_own_tail_is_not_a_box() -> None:
    """A 0 whose pen ran on inside its loop: the piece inside is no speck, but the 0 reaches no
    corner of the turned rectangle around it."""
    picture = np.zeros((200, 200), np.uint8)
    cv2.ellipse(picture, (100, 100), (40, 80), 40, 0, 360, 1, 10)
    cv2.line(picture, (85, 70), (95, 110), 1, 10)  # the tail, inside the loop
    labels, stats = components(picture)
    assert not boxes(labels, stats, np.arange(len(stats)) > 0).any()


def test_a_turned_box_is_still_a_box() -> None:
    picture = np.zeros((240, 240), np.uint8)
    corners = cv2.boxPoints(((120, 120), (120, 170), 12)).astype(np.int32)
    cv2.polylines(picture, [corners], True, 1, 2)
    cv2.line(picture, (120, 70), (120, 170), 1, 8)
    labels, stats = components(picture)
    assert boxes(labels, stats, np.arange(len(stats)) > 0).sum() == 1


@pytest.mark.parametrize(
    ("axes", "one"),
    [((80, 80), (50, 150, 8)), ((85, 90), (70, 130, 3))],
    ids=["close around it", "with room to spare: the 1 a third of its size"],
)
def test_a_ring_drawn_around_a_digit_is_found(axes: tuple[int, int], one: tuple[int, int, int]) -> None:
    picture = np.zeros((200, 200), np.uint8)
    cv2.ellipse(picture, (100, 100), axes, 15, 0, 360, 1, 3)
    top, bottom, width = one
    cv2.line(picture, (100, top), (100, bottom), 1, width)  # a 1 inside it
    labels, stats = components(picture)
    ring = int(stats[1:, 2].argmax()) + 1
    found = boxes(labels, stats, np.arange(len(stats)) > 0)
    assert found[ring] and found.sum() == 1


def test_a_zero_holding_a_short_broken_off_stroke_is_no_ring() -> None:
    picture = np.zeros((200, 200), np.uint8)
    cv2.ellipse(picture, (100, 100), (40, 70), 0, 0, 360, 1, 8)
    cv2.line(picture, (95, 90), (105, 115), 1, 6)  # a fifth of the 0's height
    labels, stats = components(picture)
    assert labels.max() == 2 and not boxes(labels, stats, np.arange(len(stats)) > 0).any()


def test_a_piece_inside_an_open_strokes_box_is_not_enclosed() -> None:
    """A 3 whose top bar came off lies within the 3's bounding box, but no ring closes around it."""
    picture = np.zeros((200, 200), np.uint8)
    cv2.ellipse(picture, (100, 140), (50, 30), 0, -120, 150, 1, 8)  # the 3's lower bowl, open
    cv2.line(picture, (70, 105), (100, 105), 1, 8)  # its middle
    cv2.line(picture, (60, 40), (140, 40), 1, 8)
    cv2.line(picture, (140, 40), (100, 105), 1, 8)
    cv2.line(picture, (62, 58), (118, 58), 1, 6)  # a loose piece inside the 3's box, 40% of its size
    labels, stats = components(picture)
    assert labels.max() == 2 and stats[labels[58, 90], 2] >= 0.4 * stats[labels[40, 100], 3]
    assert not boxes(labels, stats, np.arange(len(stats)) > 0).any()


def test_a_piece_beside_a_digit_filling_the_picture_is_not_taken_for_it() -> None:
    """A 1 cropped close runs from the top of the picture to its bottom; a blot beside it, a
    fifth of its ink, is what stood out once the 1 was set aside as touching the frame."""
    level = np.zeros((200, 400), np.float32)
    level[:, 190:210] = 0.9  # the 1, centred, meeting the frame only at its ends
    level[40:60, 320:340] = 0.9  # the blot, too far from the 1 to be a piece of it
    digit = select_digit(Ink(level, floor=0.1, cut=0.5, flat=False))
    assert digit.shape == (200, 20)
