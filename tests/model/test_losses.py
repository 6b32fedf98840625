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


def test_an_image_with_no_digit_pushes_every_capsule_below_m_minus() -> None:
    lengths = torch.tensor([[0.95, 0.05, 0.50]])
    # no T_k is 1: 0.5 * (0.95 - 0.1)^2 + 0.5 * (0.5 - 0.1)^2
    torch.testing.assert_close(margin_loss(lengths, torch.tensor([-1])), torch.tensor(0.36125 + 0.08))


def test_reconstruction_loss_is_averaged_over_the_digits_alone() -> None:
    images = torch.zeros(3, 1, 28, 28)
    recon = torch.ones(3, 1, 28, 28)
    recon[0] = 0.0
    loss = reconstruction_loss(recon, images, torch.tensor([4, 7, -1]))  # (0 + 784) / 2 digits
    torch.testing.assert_close(loss, torch.tensor(392.0))
    no_digits = reconstruction_loss(recon, images, torch.tensor([-1, -1, -1]))
    torch.testing.assert_close(no_digits, torch.tensor(0.0))


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
