"""Margin loss (eq. 4) and the reconstruction term against hand-computed values."""

from __future__ import annotations

import torch

from model.capsnet import CapsNet, CapsNetConfig
from model.losses import capsnet_loss, margin_loss, reconstruction_loss


def test_margin_loss_matches_hand_computation() -> None:
    lengths = torch.tensor([[0.95, 0.05, 0.50], [0.30, 0.20, 0.05]])
    labels = torch.tensor([0, 0])
    # image 1: present 0.95 > m+ -> 0; absent: 0.5 * (0.5 - 0.1)^2 = 0.08
    # image 2: present (0.9 - 0.3)^2 = 0.36; absent: 0.5 * (0.2 - 0.1)^2 = 0.005
    torch.testing.assert_close(margin_loss(lengths, labels), torch.tensor((0.08 + 0.365) / 2))


def test_margin_loss_uses_the_given_margins() -> None:
    lengths = torch.tensor([[0.5, 0.5]])
    loss = margin_loss(lengths, torch.tensor([1]), m_plus=0.8, m_minus=0.2, lam=1.0)
    torch.testing.assert_close(loss, torch.tensor(0.3**2 + 0.3**2))


def test_reconstruction_loss_is_summed_over_pixels_and_averaged_over_images() -> None:
    images = torch.zeros(2, 1, 28, 28)
    recon = torch.zeros(2, 1, 28, 28)
    recon[0, 0, :2, :2] = 0.5  # 4 pixels * 0.25 = 1.0
    torch.testing.assert_close(reconstruction_loss(recon, images), torch.tensor(0.5))


def test_total_loss_weights_reconstruction_by_the_config() -> None:
    torch.manual_seed(0)
    cfg = CapsNetConfig(conv1_channels=8, primary_types=2)
    model = CapsNet(cfg)
    images, labels = torch.rand(3, 1, 28, 28), torch.tensor([1, 2, 3])
    loss = capsnet_loss(model(images, labels), images, labels, cfg)
    torch.testing.assert_close(loss.total, loss.margin + 0.0005 * loss.reconstruction)
