"""What a PNG will cost, known from its parameters before any work: the render kinds and their sizes.

Every picture the service draws is a grid of model-sized cells (the input, a reconstruction,
figure 4's tweak grid), so its size in pixels follows from the parameters and the loaded model's
config alone. `Geometry.check` refuses, with a 422, any parameters that name a capsule or pose
dimension the model lacks or whose PNG would exceed the output limit; the pixel count it returns
is what the request costs in the admission budget. A tweak grid's decoder work (one decoder pass
per cell) is bounded by the same count.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import InvalidParameter
from model.capsnet import CapsNetConfig


@dataclass(frozen=True)
class InputPng:
    scale: int = 1


@dataclass(frozen=True)
class ReconstructionPng:
    digit: int | None = None  # None: the predicted digit
    scale: int = 1
    side_by_side: bool = False


@dataclass(frozen=True)
class TweakPng:
    digit: int | None = None
    dims: tuple[int, ...] | None = None  # None: every pose dimension
    steps: int = 11
    low: float = -0.25
    high: float = 0.25
    scale: int = 1


@dataclass(frozen=True)
class DecodePng:
    digit: int
    pose: tuple[float, ...]
    scale: int = 1


PngParams = InputPng | ReconstructionPng | TweakPng | DecodePng


@dataclass(frozen=True)
class Geometry:
    """The loaded model's sizes and the output limit: everything a PNG's cost depends on."""

    side: int  # the model's input (and decoder output) is side x side
    classes: int
    pose_dims: int
    max_output_pixels: int

    @classmethod
    def of(cls, config: CapsNetConfig, max_output_pixels: int) -> Geometry:
        return cls(config.image_size, config.num_classes, config.digit_dim, max_output_pixels)

    def cells(self, params: PngParams) -> tuple[int, int]:
        """(rows, columns) of model-sized cells in the PNG."""
        if isinstance(params, TweakPng):
            return len(self.dims(params)), params.steps
        if isinstance(params, ReconstructionPng) and params.side_by_side:
            return 1, 2
        return 1, 1

    def dims(self, params: TweakPng) -> tuple[int, ...]:
        return tuple(range(self.pose_dims)) if params.dims is None else params.dims

    def check(self, params: PngParams) -> int:
        """The PNG's pixel count, after refusing parameters the model or the limits cannot serve."""
        digit = getattr(params, "digit", None)
        if digit is not None and not 0 <= digit < self.classes:
            raise InvalidParameter(f"digit must be 0-{self.classes - 1}, got {digit}")
        if isinstance(params, TweakPng):
            self.check_dims(self.dims(params))
        if isinstance(params, DecodePng) and len(params.pose) != self.pose_dims:
            raise InvalidParameter(f"a pose has {self.pose_dims} numbers, got {len(params.pose)}")
        rows, cols = self.cells(params)
        height, width = rows * self.side * params.scale, cols * self.side * params.scale
        if height * width > self.max_output_pixels:
            raise InvalidParameter(
                f"the PNG would be {width}x{height} pixels; the limit is {self.max_output_pixels}",
                {"max_output_pixels": self.max_output_pixels},
            )
        return height * width

    def check_dims(self, dims: tuple[int, ...]) -> None:
        if not dims or len(dims) > self.pose_dims:
            raise InvalidParameter(f"dims lists 1 to {self.pose_dims} pose dimensions, got {len(dims)}")
        if any(not 0 <= d < self.pose_dims for d in dims):
            raise InvalidParameter(f"dims must be integers 0-{self.pose_dims - 1}")
        if len(set(dims)) != len(dims):
            raise InvalidParameter("dims must not repeat a dimension")
