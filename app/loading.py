"""Start-up: load the weights once onto the chosen device, warm up, and describe the model.

Called from the lifespan in a worker thread, so the process answers /healthz (and a 503 on
/readyz) while this runs. The log line names the weights (path, sha256), the device, the
precision and the time taken, so an operator can tell from the log alone what is being served.
Once warm, the start-up heap is frozen out of the garbage collector's reach (`gc.freeze()`):
the model, torch and the app are hundreds of thousands of long-lived objects that every full
collection would otherwise walk again, pausing all requests for ~100 ms each time. The gen-0
threshold is raised too: a request allocates a few thousand short-lived objects, nearly all freed
by reference counting, so the default threshold (700) ran a young collection every few requests
for almost nothing; under the load test this cut the collector's time from ~0.24 ms to ~0.003 ms
a request, with the same resident memory (docs/performance.md).
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app.settings import Settings
from app.threads import configure_threads
from model.capsnet import CapsNet, CapsNetConfig
from model.checkpoint import CheckpointError, card_mismatch, load_weights, read_model_card
from model.data import sha256_file
from model.device import resolve_device
from model.nondigit import CARD_KEY, DigitRule
from model.precision import ServingPrecision, resolve_precision

log = logging.getLogger("capsnet.serve")
GEN0_THRESHOLD = 10_000  # allocations (net of frees) between young collections; Python's default is 700


@dataclass(frozen=True)
class LoadedModel:
    model: CapsNet
    device: torch.device
    precision: ServingPrecision
    info: dict[str, Any]  # what GET /v1/model reports
    digit_rule: DigitRule | None  # the card's digit check; None for weights never calibrated
    seconds: float


def load_model(settings: Settings) -> LoadedModel:
    start = time.perf_counter()
    device = resolve_device(settings.device)
    model = load_weights(settings.weights, device)
    ensure_servable(model.config, settings.weights)
    sha256 = sha256_file(settings.weights)
    info = describe(model, device, settings.weights, sha256)  # before the convolutions are readied
    digit_rule = DigitRule.from_card(info)  # a card calibrated by an older release fails here, named
    precision = ServingPrecision(model, device, resolve_precision(settings.precision, device))
    info["precision"] = precision.precision
    if info["card_warning"]:
        log.warning("%s", info["card_warning"])
    info["cpu_threads"] = configure_threads(settings.cpu_threads, device)
    warm_up(model, precision, settings.max_batch_size if settings.batching else 1)
    freeze_startup_heap()
    seconds = time.perf_counter() - start
    log.info(
        "serving weights %s (sha256 %s) on %s in %s; loaded and warmed up in %.2f s",
        settings.weights,
        sha256,
        device,
        precision.describe(),
        seconds,
    )
    return LoadedModel(model, device, precision, info, digit_rule, seconds)


class WarmUpFailed(RuntimeError):
    """The weights load but do not compute: serving them would answer garbage."""


def warm_up(model: CapsNet, precision: ServingPrecision, batch_size: int) -> None:
    """One pass at the largest batch size, so the first request pays no allocation cost.

    Its outputs must be finite: weights holding NaN or infinity load without complaint, and would
    otherwise answer every request with `null` scores.
    """
    side = model.config.image_size
    with torch.inference_mode(), precision.region():
        images = torch.full((batch_size, 1, side, side), 0.5, device=precision.device)
        poses = model.poses(images)
        outputs = {
            "scores": poses.norm(dim=-1),
            "reconstructions": model.reconstruct(poses),
            "tweak grid": model.tweak_grid(poses[0], digit=0),
        }
    for name, values in outputs.items():
        if not torch.isfinite(values).all():
            raise WarmUpFailed(f"the warm-up pass gave non-finite {name}: the weights hold NaN or infinity")


class UnservableWeights(CheckpointError):
    """Weights that load, but whose architecture the service's inputs and answers do not fit."""


def ensure_servable(config: CapsNetConfig, weights: Path) -> None:
    """The service feeds one grey channel and answers digits 0-9; other weights fail here, clearly."""
    if config.in_channels != 1:
        raise UnservableWeights(
            f"{weights}: the model takes {config.in_channels} input channels; the service feeds 1 (grey)"
        )
    if config.num_classes != 10:
        raise UnservableWeights(
            f"{weights}: the model has {config.num_classes} classes; the service answers digits 0-9"
        )


def describe(model: CapsNet, device: torch.device, weights: Path, sha256: str) -> dict[str, Any]:
    card = read_model_card(weights)
    return {
        "name": weights.stem,
        "version": card.get("version", sha256[:12]),
        "config": model.config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "weights_sha256": sha256,
        "labels": card.get("labels"),
        "input": card.get("input"),
        "evaluation": card.get("evaluation"),
        "card_warning": card_mismatch(weights, card, sha256),
        CARD_KEY: card.get(CARD_KEY),
    }


def freeze_startup_heap() -> None:
    """Collects start-up garbage, moves every survivor to the permanent generation, and makes
    young collections rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, *gc.get_threshold()[1:])
