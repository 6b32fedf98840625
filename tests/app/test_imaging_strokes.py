"""Which shorter lines of a ruled direction are the rest of its ruling."""

from __future__ import annotations

from app.imaging.strokes import Segment, rest_of_ruling


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
