"""POST /v1/predict and /v1/capsules: one entry per uploaded image, in upload order."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query

from app.deps import IMAGE_UPLOAD, UPLOAD_ERRORS, ImagesDep, PlaneDep, PreprocessQuery, WholeNumber
from app.engine import Sample
from app.schemas import Capsules, CapsulesResponse, Links, Prediction, PredictResponse, TopK

router = APIRouter(prefix="/v1", tags=["predict"])
RejectNonDigitsQuery = Annotated[
    bool,
    Query(description="true: answer 422 not_a_digit when an image does not look like a digit to the model"),
]


@router.post("/predict", response_model=PredictResponse, responses=UPLOAD_ERRORS, openapi_extra=IMAGE_UPLOAD)
async def predict(
    plane: PlaneDep,
    files: ImagesDep,
    preprocess: PreprocessQuery = "auto",
    top_k: Annotated[WholeNumber, Query(ge=1, le=10, description="how many digits to rank")] = 3,
    reject_non_digits: RejectNonDigitsQuery = False,
) -> PredictResponse:
    """The predicted digit, the 10 capsule lengths as scores, the top k, whether it looks like a digit
    to the model, and links to its PNGs."""
    samples = await plane.infer(files, preprocess)
    if reject_non_digits:
        plane.refuse_non_digits(samples)
    return PredictResponse(predictions=[prediction(sample, top_k) for sample in samples])


@router.post(
    "/capsules", response_model=CapsulesResponse, responses=UPLOAD_ERRORS, openapi_extra=IMAGE_UPLOAD
)
async def capsules(
    plane: PlaneDep,
    files: ImagesDep,
    preprocess: PreprocessQuery = "auto",
    reject_non_digits: RejectNonDigitsQuery = False,
) -> CapsulesResponse:
    """The 10x16 digit capsule poses and their lengths."""
    samples = await plane.infer(files, preprocess)
    if reject_non_digits:
        plane.refuse_non_digits(samples)
    return CapsulesResponse(
        capsules=[
            Capsules(
                id=s.token,
                digit=s.digit,
                lengths=s.lengths.tolist(),
                poses=s.poses.tolist(),
                reconstruction_error=s.reconstruction_error,
                is_digit=s.is_digit,
            )
            for s in samples
        ]
    )


def prediction(sample: Sample, top_k: int) -> Prediction:
    scores = sample.lengths
    ranked = np.argsort(-scores, kind="stable")[:top_k]
    return Prediction(
        id=sample.token,
        digit=sample.digit,
        scores=scores.tolist(),
        top_k=[TopK(digit=int(d), score=float(scores[d])) for d in ranked],
        reconstruction_error=sample.reconstruction_error,
        is_digit=sample.is_digit,
        links=Links(
            input=f"/v1/inputs/{sample.token}.png",
            reconstruction=f"/v1/reconstructions/{sample.token}.png",
            tweak=f"/v1/tweaks/{sample.token}.png",
        ),
    )
