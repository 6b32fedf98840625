"""Links that render on any replica: the token in a PNG link is the model's input itself.

A prediction's PNG links (`/v1/reconstructions/{token}.png`, ...) must work on whichever replica
the load balancer picks, so they cannot name an entry in one process's cache. They carry the
8-bit 28x28 input the model saw (the data plane quantises every input to 8 bits, as MNIST is), zlib-
compressed and base64url-encoded with a version byte: a few hundred characters for a digit, and
never more than the model's input size allows. Any replica decodes it, runs (or finds in its cache)
the forward pass, and draws the same PNG. The input, not the poses, travels: poses mean something
only to the weights that made them, while an input stays valid across a rolling update. A token is
no more trusted than an upload: it is decoded with a bounded decompressor and must have exactly
the model's input size, or the link answers 404.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib

import numpy as np

from app.errors import NotFound

VERSION = 1
ALPHABET = re.compile(r"[A-Za-z0-9_-]+")  # base64url without padding, as `token` writes it


def quantise(images: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] -> the nearest of 256 levels, still float32: what the model sees and links carry."""
    return (np.rint(np.clip(images, 0.0, 1.0) * 255) / 255).astype(np.float32)


def token(image: np.ndarray) -> str:
    """A quantised (side, side) image -> its URL-safe token."""
    levels = np.rint(image * 255).astype(np.uint8).tobytes()
    packed = bytes([VERSION]) + zlib.compress(levels)  # zlib's default level: a third of level 9's time
    return base64.urlsafe_b64encode(packed).rstrip(b"=").decode()


def max_token_chars(side: int) -> int:
    """The longest token an input of side x side can give (zlib's worst case for incompressible bytes)."""
    packed = 1 + side * side + 5 * (side * side // 16383 + 1) + 6
    return -(-packed * 4 // 3)


def image(text: str, side: int) -> np.ndarray:
    """A token -> the (side, side) float32 image it carries; 404 for anything this service did not make."""
    if len(text) > max_token_chars(side):
        raise NotFound("not a link this service made: the token is too long")
    if not ALPHABET.fullmatch(text):
        raise NotFound("not a link this service made: the token has characters base64url does not use")
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise NotFound(f"not a link this service made: {e}") from e
    if not packed or packed[0] != VERSION:
        raise NotFound("not a link this service made: unknown token version")
    inflate = zlib.decompressobj()
    try:
        levels = inflate.decompress(packed[1:], side * side + 1)  # never inflates past one byte too many
    except zlib.error as e:
        raise NotFound(f"not a link this service made: {e}") from e
    if len(levels) != side * side or not inflate.eof or inflate.unused_data:
        raise NotFound(f"not a link this service made: it does not hold a {side}x{side} image")
    return (np.frombuffer(levels, np.uint8).reshape(side, side) / 255).astype(np.float32)
