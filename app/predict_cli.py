"""`capsnet-predict IMAGE...`: classify images on this machine, without starting a server.

The same path as `POST /v1/predict`, minus HTTP: the service's preprocessing (`app.imaging`), the
model rebuilt from its weights, and the service's PNG encoding for the pictures it can save (the
input the model saw, the reconstruction and the tweak grid), with the model card's digit check
(`is_digit` and `reconstruction_error`, as docs/digit-check.md says). A file that cannot be read
or holds no digit is reported by name and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app import links, png
from app.engine import TweakPng, decode_poses, tweak_grid
from app.errors import ServiceError
from app.imaging import Layout, prepare
from app.settings import Settings
from model.capsnet import CapsNet
from model.checkpoint import CheckpointError, load_weights, read_model_card
from model.device import DeviceUnavailable, resolve_device
from model.nondigit import DigitRule, poses_and_errors
from model.precision import PRECISIONS, ServingPrecision, resolve_precision

DEFAULTS = Settings.model_fields


@dataclass(frozen=True)
class Result:
    path: Path
    image: np.ndarray | None = None  # what the model saw
    poses: np.ndarray | None = None  # (num_classes, digit_dim)
    reconstruction_error: float | None = None  # model.nondigit's unit
    is_digit: bool | None = None  # None: the model card has no digit check
    error: ServiceError | OSError | None = None

    @property
    def scores(self) -> np.ndarray:
        return np.linalg.norm(self.poses, axis=-1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="capsnet-predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG, JPEG, WebP, BMP, TIFF or GIF")
    p.add_argument(
        "--weights", type=Path, default=DEFAULTS["weights"].default, help="(default: the shipped weights)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="as CAPSNET_PRECISION for the service (default: auto)",
    )
    p.add_argument(
        "--preprocess",
        choices=["auto", "none"],
        default="auto",
        help="auto: make it look like MNIST, as the service does; none: take a 28x28 image as it is",
    )
    p.add_argument("--top-k", type=int, default=3, help="the k most likely digits to print (default: 3)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument(
        "--save-pngs",
        type=Path,
        metavar="DIR",
        help="write NAME-input.png, NAME-reconstruction.png and NAME-tweak.png for each image into DIR",
    )
    p.add_argument("--scale", type=int, default=4, help="pixels per model pixel in saved PNGs (default: 4)")
    return p.parse_args(argv)


def classify(
    model: CapsNet,
    device: torch.device,
    precision: ServingPrecision,
    paths: list[Path],
    preprocess: str,
    layout: Layout,
    rule: DigitRule | None,
) -> list[Result]:
    """Preprocesses every file, then runs the readable ones through the model in one batch and
    applies the card's digit check as the service does."""
    max_pixels = DEFAULTS["max_image_pixels"].default
    results = []
    for path in paths:
        try:
            image = links.quantise(prepare(path.read_bytes(), preprocess, max_pixels, layout))  # as served
            results.append(Result(path, image=image))
        except (ServiceError, OSError) as e:
            results.append(Result(path, error=e))
    readable = [r.image for r in results if r.error is None]
    if not readable:
        return results
    inputs = np.stack(readable)  # (B, H, W)
    batch = torch.from_numpy(inputs).unsqueeze(1).to(device)
    with torch.inference_mode(), precision.region():
        poses, errors = (t.float().cpu().numpy() for t in poses_and_errors(model, batch))  # (B, 10, 16), (B,)
    verdicts = [None] * len(poses) if rule is None else rule.judge(inputs, poses, errors).tolist()
    outputs = iter(zip(poses, errors.tolist(), verdicts, strict=True))
    return [r if r.error is not None else judged(r, *next(outputs)) for r in results]


def judged(result: Result, poses: np.ndarray, error: float, is_digit: bool | None) -> Result:
    return replace(result, poses=poses, reconstruction_error=error, is_digit=is_digit)


def save_pngs(
    model: CapsNet,
    device: torch.device,
    precision: ServingPrecision,
    result: Result,
    out_dir: Path,
    scale: int,
) -> list[Path]:
    """The input the model saw, its reconstruction and its tweak grid, as the service draws them."""
    digit = int(result.scores.argmax())
    with torch.inference_mode(), precision.region():
        reconstruction = decode_poses(result.poses[None], digit)(model, device)
        grid = tweak_grid(result.poses, digit, TweakPng(dims=tuple(range(result.poses.shape[-1]))))(
            model, device
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures = {"input": result.image, "reconstruction": reconstruction, "tweak": png.tile(grid)}
    written = []
    for kind, pixels in pictures.items():
        path = out_dir / f"{result.path.stem}-{kind}.png"
        path.write_bytes(png.encode(pixels, scale))
        written.append(path)
    return written


def as_json(result: Result, top_k: int) -> dict[str, Any]:
    if result.error is not None:
        return {"file": str(result.path), "error": describe_error(result.error)}
    scores = result.scores
    order = np.argsort(-scores)[:top_k]
    return {
        "file": str(result.path),
        "digit": int(order[0]),
        "scores": [round(float(s), 6) for s in scores],
        "top_k": [{"digit": int(d), "score": round(float(scores[d]), 6)} for d in order],
        "reconstruction_error": round(float(result.reconstruction_error), 4),
        "is_digit": result.is_digit,
    }


def describe_error(error: ServiceError | OSError) -> dict[str, str]:
    if isinstance(error, ServiceError):
        return {"code": error.code, "message": error.message}
    return {"code": "unreadable_file", "message": error.strerror or str(error)}


def as_line(result: Result, top_k: int, width: int) -> str:
    if result.error is not None:
        return f"{result.path!s:<{width}}  error: {describe_error(result.error)['message']}"
    found = as_json(result, top_k)
    others = ", ".join(f"{t['digit']} {t['score']:.3f}" for t in found["top_k"][1:])
    verdict = {True: "yes", False: "NO", None: "-"}[result.is_digit]
    line = f"{result.path!s:<{width}}  {found['digit']:>5}  {found['top_k'][0]['score']:.3f}  {verdict:>8}"
    return f"{line}   then {others}" if others else line


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not 1 <= args.top_k <= 10:
        sys.exit("capsnet-predict: --top-k must be 1-10")
    try:
        device = resolve_device(args.device)
        model = load_weights(args.weights, device)
        precision = ServingPrecision(model, device, resolve_precision(args.precision, device))
        rule = DigitRule.from_card(read_model_card(args.weights))
    # RuntimeError: a bad device name; ValueError: a digit check calibrated by an older release
    except (CheckpointError, DeviceUnavailable, RuntimeError, ValueError) as e:
        sys.exit(f"capsnet-predict: {e}")
    layout = Layout.of_weights(model.config.to_dict(), args.weights)
    results = classify(model, device, precision, args.images, args.preprocess, layout, rule)
    written = []
    if args.save_pngs:
        for result in results:
            if result.error is None:
                written += save_pngs(model, device, precision, result, args.save_pngs, args.scale)
    if args.json:
        document = {"predictions": [as_json(r, args.top_k) for r in results]}
        if args.save_pngs:
            document["pngs"] = [str(path) for path in written]
        print(json.dumps(document, indent=2))
    else:
        width = max(len(str(r.path)) for r in results)
        print(f"{'image':<{width}}  digit  score  is_digit")
        for result in results:
            print(as_line(result, args.top_k, width))
        for path in written:
            print(f"wrote {path}")
    if any(r.error is not None for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
