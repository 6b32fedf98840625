"""The naive baseline for bench/load_test.py: FastAPI with one forward pass per request.

What a first version of the service would be: a synchronous route (FastAPI runs it in its
threadpool), the PNG decoded with Pillow, `model.class_scores` on a batch of one. No batching,
no queue, no preprocessing beyond scaling to [0, 1]; same weights, same request and path as the
service, so the load test can put both under the same load.

    python bench/peers/naive_app.py --port 8101 --device cpu
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, UploadFile
from PIL import Image

from model.checkpoint import load_weights
from model.device import resolve_device
from model.precision import autocast, resolve_precision


def create_app(weights: Path, device_name: str, precision_name: str) -> FastAPI:
    device = resolve_device(device_name)
    precision = resolve_precision(precision_name, device)
    model = load_weights(weights, device)
    app = FastAPI()

    @app.post("/v1/predict")
    def predict(file: UploadFile) -> dict[str, object]:
        pixels = np.asarray(Image.open(io.BytesIO(file.file.read())).convert("L"), dtype=np.float32) / 255
        x = torch.from_numpy(pixels)[None, None].to(device)  # (1, 1, H, W)
        with torch.inference_mode(), autocast(device, precision):
            scores = model.class_scores(x)[0].float().cpu()  # (10,)
        return {"digit": int(scores.argmax()), "scores": scores.tolist()}

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--weights", type=Path, default=Path("weights/capsnet-mnist.safetensors"))
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--precision", default="fp32", help="auto, fp32 or bf16 (default: fp32)")
    args = p.parse_args()
    app = create_app(args.weights, args.device, args.precision)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
