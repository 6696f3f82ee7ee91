"""Methods: align/uniform, MoCo v2 and SimCLR losses and state, BN groups."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from noisevision.errors import NoisevisionError, UnknownNameError
from noisevision.methods import build_method
from noisevision.methods.common import align_loss, embed, embed_pair, uniform_loss
from noisevision.methods.simclr import nt_xent
from noisevision.models import build_encoder
from noisevision.models.norm import GroupBatchNorm2d, bn_groups


def tiny_encoder(seed=0):
    torch.manual_seed(seed)
    return build_encoder("smallalexnet", width=0.0625, input_size=32)


def views(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randn(n, 3, 32, 32, generator=g)


def test_align_and_uniform_match_their_definitions():
    x = F.normalize(torch.randn(6, 5), dim=1)
    y = F.normalize(torch.randn(6, 5), dim=1)
    assert torch.isclose(align_loss(x, y), ((x - y) ** 2).sum(1).mean())
    d2 = torch.cdist(x, x) ** 2
    off = ~torch.eye(6, dtype=torch.bool)
    expected = torch.log(torch.exp(-2 * d2[off]).mean())  # mean over i ≠ j
    assert torch.isclose(uniform_loss(x), expected, atol=1e-5)


def test_align_uniform_loss_is_the_sum_of_its_terms():
    method = build_method("align_uniform", tiny_encoder())
    loss, terms = method(*views())
    assert torch.isclose(loss.detach(), terms["align"] + terms["uniform"])
    assert -4 < float(terms["uniform"]) < 0 and 0 <= float(terms["align"]) <= 4
    loss.backward()
    assert all(p.grad is not None for p in method.encoder.parameters())


def test_bn_groups_normalise_each_group_separately():
    enc = tiny_encoder()
    x = torch.randn(8, 3, 32, 32)
    torch.testing.assert_close(embed(enc, x, 2), torch.cat([enc(x[:4]), enc(x[4:])]))
    assert not torch.allclose(embed(enc, x, 2), enc(x))  # BN statistics do differ
    a, b = views()
    za, zb = embed_pair(enc, a, b, 2)
    ref = [enc(torch.cat([a[:4], b[:4]])), enc(torch.cat([a[4:], b[4:]]))]
    torch.testing.assert_close(za, torch.cat([ref[0][:4], ref[1][:4]]))
    torch.testing.assert_close(zb, torch.cat([ref[0][4:], ref[1][4:]]))
    with pytest.raises(ValueError, match="does not split"):
        embed(enc, torch.randn(6, 3, 32, 32), 4)


@pytest.mark.parametrize("arch", ["smallalexnet", "resnet18-s"])
def test_bn_groups_run_in_one_pass_as_in_one_pass_per_group(arch):
    """Our encoders' batch norms take groups (models.norm), so that shuffle-BN forwards the whole
    batch once instead of once per group (on a GPU): the same embeddings, gradients and running
    statistics as one pass per group. A model with other batch norms falls back to a pass per group.

    In float64: a convolution over 12 images and one over 4 may round differently (BLAS and oneDNN
    pick kernels by batch size, differently on each CPU), which in float32 can exceed the tolerance
    of gradients that are sums with cancellation; the grouping itself is what is tested here."""
    torch.manual_seed(0)
    enc = build_encoder(arch, width=0.125, input_size=32).double()
    ref = copy.deepcopy(enc)
    x = torch.randn(12, 3, 32, 32, dtype=torch.float64)
    with bn_groups(enc, 3) as one_pass:
        assert one_pass and all(m.groups == 3 for m in enc.modules() if isinstance(m, GroupBatchNorm2d))
    assert all(m.groups == 1 for m in enc.modules() if isinstance(m, GroupBatchNorm2d))
    with bn_groups(enc, 3):
        grouped = enc(x)
    chunked = torch.cat([ref(chunk) for chunk in x.chunk(3)])
    torch.testing.assert_close(grouped, chunked)
    weights = torch.arange(12.0, dtype=torch.float64)[:, None]
    (grouped * weights).sum().backward()
    (chunked * weights).sum().backward()
    for (name, a), b in zip(enc.named_parameters(), ref.parameters()):
        scale = float(b.grad.abs().max())  # (weight gradients summed over 12 images, not 3 × 4)
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5 * scale, rtol=1e-4, msg=name)
    for (name, a), b in zip(enc.named_buffers(), ref.buffers()):
        torch.testing.assert_close(a, b, msg=name)  # running means and variances, chunk after chunk
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten())
    plain = plain.double()
    with bn_groups(plain, 3) as one_pass:
        assert not one_pass
    torch.testing.assert_close(embed(plain, x, 3), torch.cat([plain(chunk) for chunk in x.chunk(3)]))


def test_nt_xent_matches_a_per_anchor_loop():
    z1 = F.normalize(torch.randn(4, 8), dim=1)
    z2 = F.normalize(torch.randn(4, 8), dim=1)
    z = torch.cat([z1, z2])
    losses = []
    for i in range(8):
        pos = (i + 4) % 8
        sims = torch.stack([z[i] @ z[j] / 0.5 for j in range(8) if j != i])
        losses.append(-(z[i] @ z[pos] / 0.5) + torch.logsumexp(sims, 0))
    assert torch.isclose(nt_xent(z1, z2, 0.5), torch.stack(losses).mean(), atol=1e-5)


def test_moco_queue_momentum_and_loss():
    method = build_method("moco_v2", tiny_encoder(), queue_size=32, momentum=0.9, temperature=0.2)
    key_before = [p.clone() for p in method.key_encoder.parameters()]
    queue_before = method.queue.clone()
    loss, terms = method(*views(8), step=0)
    # cross-entropy over 1 + 32 logits in [-1/T, 1/T]: between 0 and log(33) + 2/T
    assert 0 < loss.item() < math.log(33) + 2 / 0.2 and torch.isclose(loss.detach(), terms["loss"])
    assert int(method.queue_ptr) == 8
    assert torch.equal(method.queue[:, 8:], queue_before[:, 8:])
    torch.testing.assert_close(method.queue[:, :8].norm(dim=0), torch.ones(8))
    # key encoder = 0.9 · key + 0.1 · query (identical at start, so unchanged by the first update)
    for k0, k1 in zip(key_before, method.key_encoder.parameters()):
        torch.testing.assert_close(k0, k1)
    loss.backward()
    assert all(p.grad is None for p in method.key_encoder.parameters())
    with torch.no_grad():
        for p in method.encoder.parameters():
            p.add_(1.0)
    method(*views(8, seed=1), step=1)
    for k0, k1 in zip(key_before, method.key_encoder.parameters()):
        torch.testing.assert_close(k1, k0 + 0.1, rtol=1e-5, atol=1e-5)
    assert int(method.queue_ptr) == 16


def test_moco_shuffle_returns_keys_in_input_order():
    """In eval mode (no batch statistics) the shuffle must be invisible."""
    method = build_method("moco_v2", tiny_encoder(), queue_size=16, bn_groups=4)
    method.eval()
    _, v2 = views(8)
    with torch.no_grad():
        keys = method._shuffled_keys(v2, step=3)
        torch.testing.assert_close(keys, F.normalize(method.key_encoder(v2), dim=1))


def test_moco_queue_must_fit_batches():
    method = build_method("moco_v2", tiny_encoder(), queue_size=12)
    with pytest.raises(ValueError, match="multiple of the batch size"):
        method(*views(8))


def test_simclr_and_unknown_names():
    loss, terms = build_method("simclr", tiny_encoder())(*views())
    assert loss.requires_grad and {"loss", "align", "uniform"} <= set(terms)
    with pytest.raises(UnknownNameError, match="did you mean"):
        build_method("mocov2", tiny_encoder())
    with pytest.raises(NoisevisionError, match="bad options"):
        build_method("simclr", tiny_encoder(), queue_size=3)


def test_each_method_names_a_registered_linear_protocol():
    from noisevision.evaluate.probes import PROTOCOLS
    from noisevision.methods import METHODS

    assert {name: METHODS.get(name).protocol for name in METHODS} == {
        "align_uniform": "paper",
        "moco_v2": "moco",
        "simclr": "paper",
        "supervised": "paper",
    }
    assert all(METHODS.get(name).protocol in PROTOCOLS for name in METHODS)
