"""Which shorter lines of a ruled direction are the rest of its ruling; which components are boxes."""

from __future__ import annotations

import cv2
import numpy as np

from app.imaging.strokes import Segment, boxes, rest_of_ruling


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


def test_a_ring_drawn_around_a_digit_is_found() -> None:
    picture = np.zeros((200, 200), np.uint8)
    cv2.circle(picture, (100, 100), 80, 1, 3)
    cv2.line(picture, (100, 50), (100, 150), 1, 8)  # a 1 inside it
    labels, stats = components(picture)
    found = boxes(labels, stats, np.arange(len(stats)) > 0)
    assert found[labels[20, 100]] and found.sum() == 1


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
