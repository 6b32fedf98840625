"""The same weights served by LitServe, the peer bench/load_test.py measures the service against.

Written as LitServe's docs write an image classifier: decode the upload in `decode_request`,
stack in `batch`, one forward pass per batch in `predict`, split in `unbatch`. Dynamic batching
as in LitServe's examples (up to 32 images, a 5 ms batch window), one inference worker. The
request (multipart field `file`, a PNG) and the path are the service's, so one wrk script drives
both. LitServe is not a serving dependency: install it with `pip install -e '.[bench]'`.

    python bench/peers/litserve_app.py --port 8102 --device cpu
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import litserve as ls
import numpy as np
import torch
from PIL import Image

from model.checkpoint import load_weights
from model.precision import autocast, resolve_precision


class CapsNetAPI(ls.LitAPI):
    def __init__(self, weights: Path, precision: str, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/v1/predict")
        self.weights, self.precision_name = weights, precision

    def setup(self, device: str) -> None:
        # LitServe keeps its own `self.device` (a string): the model's device gets another name
        self.model_device = torch.device(device)
        self.compute_precision = resolve_precision(self.precision_name, self.model_device)
        self.model = load_weights(self.weights, self.model_device)

    def decode_request(self, request) -> torch.Tensor:
        data = request["file"].file.read()
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32) / 255
        return torch.from_numpy(pixels)[None]  # (1, H, W)

    def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(inputs)  # (B, 1, H, W)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(self.model_device, self.compute_precision):
            return self.model.class_scores(x.to(self.model_device)).float().cpu()  # (B, 10)

    def unbatch(self, output: torch.Tensor) -> list[torch.Tensor]:
        return list(output)

    def encode_response(self, scores: torch.Tensor) -> dict[str, object]:
        return {"digit": int(scores.argmax()), "scores": scores.tolist()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--weights", type=Path, default=Path("weights/capsnet-mnist.safetensors"))
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--precision", default="fp32", help="auto, fp32 or bf16 (default: fp32)")
    p.add_argument("--max-batch-size", type=int, default=32, help="(default: 32)")
    p.add_argument("--batch-timeout", type=float, default=0.005, help="seconds (default: 0.005)")
    args = p.parse_args()
    server = ls.LitServer(
        CapsNetAPI(args.weights.resolve(), args.precision, args.max_batch_size, args.batch_timeout),
        accelerator="cuda" if args.device.startswith("cuda") else "cpu",
        devices=1,
        workers_per_device=1,
    )
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
