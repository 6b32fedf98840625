"""What touches the picture's frame: in a photo, a desk, a shadow or the page's edge, which is
no ink; in a picture cropped close around its digit, the digit itself."""

from __future__ import annotations

import numpy as np

FRAME_CONTACT = 0.4  # of the frame's border: a digit cropped close meets it only where its strokes end
CROPPED_CENTRE = 0.2  # of the frame's sides: and its ink's centre lies this near the middle


def edge_pixels(image: np.ndarray) -> np.ndarray:
    """The pixels (or labels) along the picture's edge, each once."""
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])


def touches_frame(stats: np.ndarray, h: int, w: int) -> np.ndarray:
    """Of the components (OpenCV's stats), those whose bounding box reaches the picture's edge."""
    x, y, bw, bh = (stats[:, i] for i in range(4))
    return (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)


def fills_the_picture(labels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The components centred in the picture that cover little of its border (`FRAME_CONTACT`): a
    digit cropped close, touching the frame with its strokes' ends. A desk or a board's frame around
    the page runs along the border; a shadow or the desk beside the page lies off to one side."""
    h, w = labels.shape
    border = edge_pixels(labels)
    contact = np.bincount(border, minlength=len(centres)) / border.size
    off_centre = np.abs(centres - [w / 2, h / 2]) / [w, h]
    return (contact <= FRAME_CONTACT) & (off_centre <= CROPPED_CENTRE).all(axis=1)
