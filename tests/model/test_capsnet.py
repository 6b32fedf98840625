"""The architecture of section 4: shapes, squash, routing-by-agreement, masking, tweaks."""

from __future__ import annotations

import pytest
import torch

from model.capsnet import CapsNet, CapsNetConfig, RoutingCapsules, squash

SMALL = CapsNetConfig(conv1_channels=16, primary_types=4)


@pytest.fixture(scope="module")
def paper_model() -> CapsNet:
    torch.manual_seed(0)
    return CapsNet().eval()


def test_paper_configuration_shapes(paper_model: CapsNet) -> None:
    images = torch.rand(2, 1, 28, 28)
    features = torch.relu(paper_model.conv1(images))
    assert features.shape == (2, 256, 20, 20)
    primary = paper_model.primary(features)
    assert primary.shape == (2, 1152, 8)
    assert paper_model.digits.weight.shape == (1152, 10, 16, 8)
    assert paper_model.digits.predictions(primary).shape == (2, 10, 1152, 16)
    out = paper_model(images)
    assert out.poses.shape == (2, 10, 16)
    assert out.lengths.shape == (2, 10)
    assert out.reconstruction.shape == (2, 1, 28, 28)
    assert ((out.reconstruction >= 0) & (out.reconstruction <= 1)).all()


def test_primary_capsules_are_squashed(paper_model: CapsNet) -> None:
    features = torch.relu(paper_model.conv1(torch.rand(2, 1, 28, 28)))
    assert (paper_model.primary(features).norm(dim=-1) < 1).all()


def test_mixed_precision_runs_only_the_convolutions_in_bf16() -> None:
    """Under autocast (`capsnet-train --amp`) the two convolutions, 99% of the FLOPs, run in
    bf16; the capsules, routing and decoder stay fp32 and close to the fp32 model's."""
    torch.manual_seed(0)
    model = CapsNet(SMALL).eval()
    images = torch.rand(4, 1, 28, 28)
    conv_dtypes: list[torch.dtype] = []
    model.primary.conv.register_forward_hook(lambda _m, _i, out: conv_dtypes.append(out.dtype))
    with torch.no_grad():
        exact = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(images)
    assert conv_dtypes == [torch.float32, torch.bfloat16]
    assert mixed.poses.dtype == mixed.reconstruction.dtype == torch.float32
    torch.testing.assert_close(mixed.poses, exact.poses, atol=0.02, rtol=0.05)
    torch.testing.assert_close(mixed.reconstruction, exact.reconstruction, atol=0.02, rtol=0.05)


def test_squash_keeps_direction_and_maps_length_below_one() -> None:
    s = torch.tensor([[3.0, 4.0], [0.03, 0.04], [300.0, 400.0]])
    v = squash(s)
    lengths = v.norm(dim=-1)
    torch.testing.assert_close(lengths, torch.tensor([25 / 26, 0.0025 / 1.0025, 250000 / 250001]))
    cosine = torch.nn.functional.cosine_similarity(v, s, dim=-1)
    torch.testing.assert_close(cosine, torch.ones(3))


def test_squash_of_zero_is_zero_with_finite_gradient() -> None:
    s = torch.zeros(4, 16, requires_grad=True)
    v = squash(s)
    v.sum().backward()
    assert torch.equal(v, torch.zeros_like(v))
    assert torch.isfinite(s.grad).all()


def test_couplings_sum_to_one_over_digit_capsules() -> None:
    layer = RoutingCapsules(CapsNetConfig(routing_iterations=3))
    _, coupling = layer.route(torch.randn(2, 10, 1152, 16))
    torch.testing.assert_close(coupling.sum(dim=1), torch.ones(2, 1152))


def test_one_iteration_means_uniform_couplings() -> None:
    layer = RoutingCapsules(CapsNetConfig(routing_iterations=1))
    _, coupling = layer.route(torch.randn(1, 10, 1152, 16))
    torch.testing.assert_close(coupling, torch.full_like(coupling, 0.1))


def test_agreeing_predictions_win_the_coupling() -> None:
    """Every primary capsule predicts the same pose for digit 3 and random poses elsewhere:
    routing must move each primary's coupling towards digit 3 (the paper's 'agreement')."""
    torch.manual_seed(0)
    u_hat = 0.1 * torch.randn(1, 10, 1152, 16)  # disagreeing predictions
    u_hat[0, 3] = 0.5 * torch.nn.functional.normalize(torch.ones(16), dim=0)  # all agree
    layer = RoutingCapsules(CapsNetConfig(routing_iterations=3))
    v, coupling = layer.route(u_hat)
    assert (coupling[0, 3] > 0.1).all()
    assert (coupling[0, 3] > coupling[0, [0, 1, 2, 4, 5, 6, 7, 8, 9]].max(dim=0).values).all()
    assert v[0].norm(dim=-1).argmax() == 3


def test_decoder_sees_only_the_named_digit() -> None:
    torch.manual_seed(0)
    model = CapsNet(SMALL).eval()
    poses = torch.randn(2, 10, 16)
    digits = torch.tensor([3, 7])
    before = model.reconstruct(poses, digits)
    edited = poses.clone()
    edited[:, [0, 1, 2, 4, 5, 6, 8, 9]] = torch.randn(2, 8, 16)  # every capsule but 3 and 7
    edited[0, 7], edited[1, 3] = 0.0, 0.0
    torch.testing.assert_close(model.reconstruct(edited, digits), before)
    changed = poses.clone()
    changed[0, 3] += 1.0
    assert not torch.allclose(model.reconstruct(changed, digits)[0], before[0])


def test_inference_decodes_the_longest_capsule() -> None:
    model = CapsNet(SMALL).eval()
    poses = torch.zeros(1, 10, 16)
    poses[0, 6, 0] = 0.9
    poses[0, 2, 0] = 0.4
    torch.testing.assert_close(model.reconstruct(poses), model.reconstruct(poses, torch.tensor([6])))


def test_tweak_grid_shifts_one_dimension_per_row() -> None:
    model = CapsNet(SMALL).eval()
    poses = torch.randn(10, 16) * 0.1
    with torch.no_grad():
        grid = model.tweak_grid(poses, digit=4)
        assert grid.shape == (16, 11, 1, 28, 28)
        plain = model.reconstruct(poses.unsqueeze(0), torch.tensor([4]))[0]
        for row in range(16):  # the middle column is an offset of zero
            torch.testing.assert_close(grid[row, 5], plain)
        some = model.tweak_grid(poses, digit=4, dims=[2, 9], low=-0.5, high=0.5, steps=5)
        assert some.shape == (2, 5, 1, 28, 28)
        shifted = poses.clone()
        shifted[4, 9] += 0.5
        torch.testing.assert_close(some[1, 4], model.reconstruct(shifted.unsqueeze(0), torch.tensor([4]))[0])


def test_config_round_trips_through_a_dict() -> None:
    cfg = CapsNetConfig(routing_iterations=2, decoder_hidden=(64, 128))
    assert CapsNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown config keys"):
        CapsNetConfig.from_dict({**cfg.to_dict(), "dropout": 0.1})
    with pytest.raises(ValueError, match="routing_iterations"):
        CapsNetConfig(routing_iterations=0)
