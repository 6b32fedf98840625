"""Request and response models: the JSON contract, with the examples shown in the OpenAPI docs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

POSE_BOUND = 1.0  # capsule outputs are squashed to length < 1, so no coordinate goes beyond this


def not_a_boolean(value: object) -> object:
    """JSON's `true` and `false` are not numbers (pydantic's lax mode would read them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


PoseValue = Annotated[
    float, BeforeValidator(not_a_boolean), Field(ge=-POSE_BOUND, le=POSE_BOUND, allow_inf_nan=False)
]
# A 28x28 PNG of a "1" (a bar with a foot): a valid upload for the OpenAPI examples.
EXAMPLE_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAJElEQVR42mNgGGSAEZnzH02ACZ/OUckBkmREiS80"
    "MfKNHXQAAKbqAiPRgjl5AAAAAElFTkSuQmCC"
)
EXAMPLE_ID = "AXjaY2AYnOA_EIzKDWK5_3BAPblBAADH_Vmn"  # that image's token, as a prediction names it
SCORES_EXAMPLE = [0.02, 0.01, 0.03, 0.02, 0.05, 0.01, 0.01, 0.98, 0.02, 0.04]
RECONSTRUCTION_ERROR = Field(
    description="how far the decoder's redrawing from the winning capsule is from the input: the sum over "
    "the 28x28 pixels (values in [0, 1]) of their squared difference; 0 is a perfect redrawing, 784 the most",
    ge=0,
)
IS_DIGIT = Field(
    description="false when the input does not look like a digit to the model: its reconstruction error is "
    "above, or its winning capsule shorter than, the thresholds in the model card (GET /v1/model, "
    "`digit_check`); null when the card has no calibrated thresholds"
)


class ErrorBody(BaseModel):
    code: str = Field(examples=["no_digit_found"])
    message: str = Field(
        examples=["no digit found: the image has no ink that stands out from its background"]
    )
    details: Any = None
    request_id: str = Field(description="also in the X-Request-ID header and the server's log lines")


class ErrorResponse(BaseModel):
    error: ErrorBody


class TopK(BaseModel):
    digit: int = Field(ge=0, le=9)
    score: float


class Links(BaseModel):
    input: str = Field(description="the preprocessed 28x28 input the model saw")
    reconstruction: str
    tweak: str


class Prediction(BaseModel):
    id: str = Field(
        description="the preprocessed input, compressed (some 100 characters); names its PNGs on any replica"
    )
    digit: int = Field(ge=0, le=9)
    scores: list[float] = Field(description="the 10 digit capsules' lengths", min_length=10, max_length=10)
    top_k: list[TopK]
    reconstruction_error: float = RECONSTRUCTION_ERROR
    is_digit: bool | None = IS_DIGIT
    links: Links


class PredictResponse(BaseModel):
    predictions: list[Prediction]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "predictions": [
                        {
                            "id": EXAMPLE_ID,
                            "digit": 7,
                            "scores": SCORES_EXAMPLE,
                            "top_k": [{"digit": 7, "score": 0.98}, {"digit": 4, "score": 0.05}],
                            "reconstruction_error": 11.8,
                            "is_digit": True,
                            "links": {
                                "input": f"/v1/inputs/{EXAMPLE_ID}.png",
                                "reconstruction": f"/v1/reconstructions/{EXAMPLE_ID}.png",
                                "tweak": f"/v1/tweaks/{EXAMPLE_ID}.png",
                            },
                        }
                    ]
                }
            ]
        }
    )


class Capsules(BaseModel):
    id: str
    digit: int = Field(ge=0, le=9)
    lengths: list[float] = Field(min_length=10, max_length=10)
    poses: list[list[float]] = Field(description="10 pose vectors of 16 numbers, one per digit")
    reconstruction_error: float = RECONSTRUCTION_ERROR
    is_digit: bool | None = IS_DIGIT


class CapsulesResponse(BaseModel):
    capsules: list[Capsules]


class DecodeRequest(BaseModel):
    digit: Annotated[int, BeforeValidator(not_a_boolean)] = Field(
        ge=0, le=9, description="which digit capsule the pose belongs to"
    )
    pose: list[PoseValue] = Field(min_length=16, max_length=16, description=f"16 numbers in ±{POSE_BOUND}")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"digit": 3, "pose": [0.1, -0.05, 0.2, 0.0] * 4}]}
    )


class ModelInfo(BaseModel):
    name: str
    version: str
    config: dict[str, Any]
    parameters: int
    device: str
    dtype: str = Field(description="the stored weights' dtype")
    precision: Literal["fp32", "bf16"] = Field(
        description="what the convolutions compute in (capsules, routing and decoder stay fp32)"
    )
    cpu_threads: int = Field(description="threads of one forward pass on the CPU (CAPSNET_CPU_THREADS)")
    weights_sha256: str
    labels: list[str] | None
    input: dict[str, Any] | None
    evaluation: dict[str, Any] | None = Field(description="test-set figures from the model card, if recorded")
    card_warning: str | None = Field(
        description="why the model card beside the weights may not describe them (null when it matches)"
    )
    digit_check: dict[str, Any] | None = Field(
        default=None, description="the is_digit rule and thresholds from the model card (capsnet-calibrate)"
    )


class Status(BaseModel):
    status: str = Field(examples=["ok"])
