"""The Capsule Network of Sabour, Frosst & Hinton, "Dynamic Routing Between Capsules" (2017).

Reads top to bottom like section 4 of the paper: a ReLU convolution, a layer of primary
capsules, a layer of digit capsules fed by routing-by-agreement (Procedure 1), and a decoder
that rebuilds the image from the pose of one digit capsule (section 4.1). Every
hyperparameter lives in `CapsNetConfig`, which is saved beside the weights so the model can
be rebuilt from the checkpoint alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from itertools import pairwise
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class CapsNetConfig:
    """Architecture and loss hyperparameters (the paper's MNIST configuration by default)."""

    image_size: int = 28
    in_channels: int = 1
    conv1_channels: int = 256
    conv1_kernel: int = 9
    primary_types: int = 32  # capsule maps in PrimaryCaps
    primary_dim: int = 8
    primary_kernel: int = 9
    primary_stride: int = 2
    num_classes: int = 10
    digit_dim: int = 16
    routing_iterations: int = 3  # r in Procedure 1; 1 means no routing
    decoder_hidden: tuple[int, ...] = (512, 1024)
    squash_eps: float = 1e-8  # |s| is computed as sqrt(|s|^2 + eps)
    m_plus: float = 0.9  # margin loss, eq. 4
    m_minus: float = 0.1
    lambda_absent: float = 0.5
    reconstruction_weight: float = 0.0005  # scales the summed squared pixel error

    def __post_init__(self) -> None:
        if self.routing_iterations < 1:
            raise ValueError("routing_iterations must be >= 1")
        if self.primary_grid < 1:
            raise ValueError("image_size too small for the two 9x9 convolutions")

    @property
    def conv1_size(self) -> int:
        return self.image_size - self.conv1_kernel + 1

    @property
    def primary_grid(self) -> int:
        return (self.conv1_size - self.primary_kernel) // self.primary_stride + 1

    @property
    def num_primary(self) -> int:
        """1152 for MNIST: 32 capsule types on a 6x6 grid."""
        return self.primary_types * self.primary_grid**2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["decoder_hidden"] = list(self.decoder_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CapsNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        d = dict(d)
        if "decoder_hidden" in d:
            d["decoder_hidden"] = tuple(d["decoder_hidden"])
        return cls(**d)


def squash(s: Tensor, dim: int = -1, eps: float = 1e-8) -> Tensor:
    """Eq. 1: keep the direction, map the length into [0, 1).

    The norm is sqrt(|s|^2 + eps) so that a zero vector gives a zero output and a finite
    gradient instead of 0/0.
    """
    sq_norm = (s * s).sum(dim=dim, keepdim=True)
    norm = torch.sqrt(sq_norm + eps)
    return (sq_norm / (1.0 + sq_norm)) * (s / norm)


class PrimaryCapsules(nn.Module):
    """A 9x9 stride-2 convolution whose channels are grouped into 8D capsules (section 4)."""

    def __init__(self, cfg: CapsNetConfig) -> None:
        super().__init__()
        self.types, self.dim, self.eps = cfg.primary_types, cfg.primary_dim, cfg.squash_eps
        self.conv = nn.Conv2d(
            cfg.conv1_channels,
            cfg.primary_types * cfg.primary_dim,
            kernel_size=cfg.primary_kernel,
            stride=cfg.primary_stride,
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x).float()  # (B, 32*8, 6, 6); capsules are fp32 even under autocast
        b, _, h, w = out.shape
        out = out.view(b, self.types, self.dim, h, w)  # (B, 32, 8, 6, 6)
        out = out.permute(0, 1, 3, 4, 2).reshape(b, self.types * h * w, self.dim)  # (B, 1152, 8)
        return squash(out, eps=self.eps)


class RoutingCapsules(nn.Module):
    """Digit capsules fed by routing-by-agreement (eq. 2-3 and Procedure 1).

    Each (primary i, digit j) pair has its own 16x8 matrix W_ij; all predictions
    u_hat_j|i = W_ij u_i come from one batched einsum.
    """

    def __init__(self, cfg: CapsNetConfig) -> None:
        super().__init__()
        self.iterations, self.eps = cfg.routing_iterations, cfg.squash_eps
        self.weight = nn.Parameter(
            0.01 * torch.randn(cfg.num_primary, cfg.num_classes, cfg.digit_dim, cfg.primary_dim)
        )  # (1152, 10, 16, 8)

    def predictions(self, u: Tensor) -> Tensor:
        """u_hat_j|i = W_ij u_i for every pair at once: (B, 1152, 8) -> (B, 10, 1152, 16).

        Digit-major layout so that both routing contractions below are contiguous bmm's.
        """
        return torch.einsum("ijdk,bik->bjid", self.weight, u)  # (B, 10, 1152, 16)

    def route(self, u_hat: Tensor) -> tuple[Tensor, Tensor]:
        """Procedure 1 on u_hat (B, 10, 1152, 16).

        Returns the digit capsules v (B, 10, 16) and the final couplings c (B, 10, 1152).
        """
        logits = u_hat.new_zeros(u_hat.shape[:3])  # b_ij = 0, (B, 10, 1152)
        for iteration in range(self.iterations):
            coupling = F.softmax(logits, dim=1)  # c_ij: softmax over the digit capsules j
            s = torch.einsum("bji,bjid->bjd", coupling, u_hat)  # eq. 2: s_j = sum_i c_ij u_hat_j|i
            v = squash(s, eps=self.eps)  # (B, 10, 16)
            if iteration < self.iterations - 1:
                logits = logits + torch.einsum("bjid,bjd->bji", u_hat, v)  # agreement u_hat . v
        return v, coupling

    def forward(self, u: Tensor) -> Tensor:
        # fp32 even under mixed precision: a few MFLOPs, and bf16's 8-bit mantissa would blur
        # the agreements that decide the couplings
        with torch.autocast(u.device.type, enabled=False):
            v, _ = self.route(self.predictions(u.float()))
        return v


class Decoder(nn.Module):
    """Three fully connected layers that redraw the digit from one capsule's pose (fig. 2)."""

    def __init__(self, cfg: CapsNetConfig) -> None:
        super().__init__()
        self.image_shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
        sizes = [cfg.num_classes * cfg.digit_dim, *cfg.decoder_hidden]
        layers: list[nn.Module] = []
        for fan_in, fan_out in pairwise(sizes):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU(inplace=True)]
        layers += [nn.Linear(sizes[-1], cfg.in_channels * cfg.image_size**2), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, poses: Tensor, digits: Tensor) -> Tensor:
        """Masks every capsule but `digits` (B,) and decodes: (B, 10, 16) -> (B, 1, 28, 28)."""
        mask = F.one_hot(digits, poses.shape[1]).to(poses.dtype)  # (B, 10)
        masked = (poses * mask.unsqueeze(-1)).flatten(1)  # (B, 160)
        with torch.autocast(poses.device.type, enabled=False):  # 1% of the FLOPs: keep fp32
            return self.net(masked).view(-1, *self.image_shape)  # (B, 1, 28, 28)


class CapsNetOutput(NamedTuple):
    poses: Tensor  # (B, 10, 16) digit capsule activity vectors v_j
    lengths: Tensor  # (B, 10) |v_j|, the class scores
    reconstruction: Tensor  # (B, 1, 28, 28)


class CapsNet(nn.Module):
    """Conv1 -> PrimaryCaps -> DigitCaps (routing) -> masked Decoder."""

    def __init__(self, cfg: CapsNetConfig = CapsNetConfig()) -> None:
        super().__init__()
        self.config = cfg
        self.conv1 = nn.Conv2d(cfg.in_channels, cfg.conv1_channels, kernel_size=cfg.conv1_kernel)
        self.primary = PrimaryCapsules(cfg)
        self.digits = RoutingCapsules(cfg)
        self.decoder = Decoder(cfg)

    def poses(self, images: Tensor) -> Tensor:
        """Images (B, 1, 28, 28) in [0, 1] -> digit capsule poses (B, 10, 16)."""
        features = F.relu(self.conv1(images))  # (B, 256, 20, 20)
        return self.digits(self.primary(features))  # (B, 10, 16)

    def class_scores(self, images: Tensor) -> Tensor:
        """Capsule lengths (B, 10): the probability that each digit is present."""
        return self.poses(images).norm(dim=-1)

    def reconstruct(self, poses: Tensor, digits: Tensor | None = None) -> Tensor:
        """Decodes the capsule `digits` (B,) of `poses` (B, 10, 16); the longest when None."""
        if digits is None:
            digits = poses.norm(dim=-1).argmax(dim=1)
        return self.decoder(poses, digits)

    def forward(self, images: Tensor, labels: Tensor | None = None) -> CapsNetOutput:
        """In training the decoder sees the true label's capsule, at inference the longest."""
        poses = self.poses(images)
        return CapsNetOutput(poses, poses.norm(dim=-1), self.reconstruct(poses, labels))

    def tweak_grid(
        self,
        poses: Tensor,
        digit: int,
        dims: list[int] | None = None,
        low: float = -0.25,
        high: float = 0.25,
        steps: int = 11,
    ) -> Tensor:
        """Figure 4: decode one capsule with each pose dimension shifted over [low, high].

        `poses` is one image's (10, 16); returns (len(dims), steps, 1, 28, 28), one row per
        dimension and one column per shift, decoded in a single batch.
        """
        dims = list(range(poses.shape[-1])) if dims is None else dims
        offsets = torch.linspace(low, high, steps, device=poses.device, dtype=poses.dtype)
        grid = poses.expand(len(dims), steps, *poses.shape).clone()  # (D, S, 10, 16)
        for row, dim in enumerate(dims):
            grid[row, :, digit, dim] += offsets
        flat = grid.flatten(0, 1)  # (D*S, 10, 16)
        digits = torch.full((flat.shape[0],), digit, device=poses.device, dtype=torch.long)
        images = self.decoder(flat, digits)  # (D*S, 1, 28, 28)
        return images.view(len(dims), steps, *images.shape[1:])
