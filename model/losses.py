"""The training objective of section 3 and 4.1: margin loss plus a down-weighted
reconstruction loss."""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor

from model.capsnet import CapsNetConfig, CapsNetOutput


def margin_loss(
    lengths: Tensor, labels: Tensor, m_plus: float = 0.9, m_minus: float = 0.1, lam: float = 0.5
) -> Tensor:
    """Eq. 4, summed over the classes and averaged over the batch.

    L_k = T_k max(0, m+ - |v_k|)^2 + lambda (1 - T_k) max(0, |v_k| - m-)^2

    A label of -1 is an image with no digit: every T_k = 0, every capsule pushed below m-.
    """
    shown = (labels >= 0).unsqueeze(1)  # (B, 1)
    present = (F.one_hot(labels.clamp(min=0), lengths.shape[1]) * shown).to(lengths.dtype)  # T_k, (B, 10)
    loss_present = present * F.relu(m_plus - lengths).pow(2)
    loss_absent = lam * (1.0 - present) * F.relu(lengths - m_minus).pow(2)
    return (loss_present + loss_absent).sum(dim=1).mean()


def reconstruction_loss(reconstruction: Tensor, images: Tensor, labels: Tensor | None = None) -> Tensor:
    """Sum of squared pixel errors per image, averaged over the batch (section 4.1); with
    `labels`, over its digits only: an image with no digit (label -1) has nothing to redraw."""
    errors = (reconstruction - images).pow(2).flatten(1).sum(dim=1)  # (B,)
    if labels is None:
        return errors.mean()
    digits = (labels >= 0).to(errors.dtype)
    return (errors * digits).sum() / digits.sum().clamp(min=1.0)


class CapsNetLoss(NamedTuple):
    total: Tensor
    margin: Tensor
    reconstruction: Tensor


def capsnet_loss(out: CapsNetOutput, images: Tensor, labels: Tensor, cfg: CapsNetConfig) -> CapsNetLoss:
    """Margin loss + reconstruction_weight x reconstruction loss, the weights from `cfg`; a label
    of -1 marks an image with no digit."""
    margin = margin_loss(out.lengths, labels, cfg.m_plus, cfg.m_minus, cfg.lambda_absent)
    recon = reconstruction_loss(out.reconstruction, images, labels)
    return CapsNetLoss(margin + cfg.reconstruction_weight * recon, margin, recon)
