import pytest
import torch

from zoomsr.errors import ZoomsrError
from zoomsr.losses.expr import CompositeLoss, parse_loss
from zoomsr.losses.gan import Adversarial, PatchDiscriminator, VGGDiscriminator, discriminator_loss
from zoomsr.losses.pixel import TV, Charbonnier, Cycle
from zoomsr.ops.resize import imresize


def test_parse_loss_expressions():
    assert parse_loss("1*L1+0.001*TV") == [(1.0, "L1"), (0.001, "TV")]
    assert parse_loss("L1 + 1e-3*VGG54") == [(1.0, "L1"), (0.001, "VGG54")]
    assert parse_loss("1*MSE+1e+2*TV") == [(1.0, "MSE"), (100.0, "TV")]
    with pytest.raises(ZoomsrError, match="cannot parse"):
        parse_loss("1*L1+*TV")
    with pytest.raises(ZoomsrError, match="unknown loss term 'L3'"):
        CompositeLoss("1*L3")
    with pytest.raises(ZoomsrError, match="needs a discriminator"):
        CompositeLoss("1*L1+0.1*GAN")


def test_composite_loss_is_the_weighted_sum_of_logged_terms():
    sr, hr, lr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16), torch.rand(2, 3, 8, 8)
    loss = CompositeLoss("2*L1+0.5*MSE+0.1*TV")
    total, terms = loss(sr, hr, lr)
    assert set(terms) == {"L1", "MSE", "TV"}
    assert total.item() == pytest.approx(sum(terms.values()), rel=1e-6)
    assert terms["L1"] == pytest.approx(2 * (sr - hr).abs().mean().item(), rel=1e-6)


def test_pixel_terms():
    x = torch.rand(1, 3, 8, 8)
    assert TV()(torch.ones(1, 3, 8, 8)) == 0 and TV()(x) > 0
    assert Charbonnier(eps=1e-3)(x, x).item() == pytest.approx(1e-3)
    hr = torch.rand(1, 3, 16, 16)
    assert Cycle()(hr, None, imresize(hr, 0.5)).item() == pytest.approx(0, abs=1e-6)


def test_perceptual_term_uses_the_backbone():
    loss = CompositeLoss("1*VGG22")
    x = torch.rand(1, 3, 32, 32)
    assert loss(x, x, None)[0].item() == pytest.approx(0, abs=1e-6)
    assert loss(x, torch.rand(1, 3, 32, 32), None)[0].item() > 0


@pytest.mark.parametrize("kind", ["vanilla", "lsgan", "ragan"])
@pytest.mark.parametrize("disc", [VGGDiscriminator, PatchDiscriminator])
def test_gan_losses_train_the_discriminator(kind, disc):
    torch.manual_seed(0)
    d = disc(nf=16)
    adv = Adversarial(d, kind)
    real, fake = torch.rand(4, 3, 32, 32), torch.zeros(4, 3, 32, 32)
    opt = torch.optim.Adam(d.parameters(), 1e-3)
    first = None
    for _ in range(8):
        loss = adv.discriminator_step_loss(fake, real)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    assert adv(fake, real).item() > 0
    assert discriminator_loss(kind, d(fake), d(real)).item() < first
