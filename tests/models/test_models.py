"""Encoders: the paper's SmallAlexNet, torchvision-layout ResNets, the encoder file format."""

import pytest
import torch
import torchvision
from torch import nn

from noisevision.errors import NoisevisionError, UnknownNameError
from noisevision.models import Recipe, SmallAlexNet, build_encoder, load_encoder, save_encoder


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return build_encoder("smallalexnet")


def test_small_alexnet_matches_spec(alexnet):
    convs = [m for m in alexnet.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 192, 384, 384, 192]
    assert all(c.bias is None and c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    fcs = [m for m in alexnet.modules() if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(9408, 4096), (4096, 4096), (4096, 128)]
    assert fcs[0].bias is None and fcs[1].bias is None and torch.all(fcs[2].bias == 0)
    for m in convs + fcs:  # init N(0, 0.02²)
        assert abs(m.weight.std().item() - 0.02) < 0.002 and abs(m.weight.mean().item()) < 0.002
    for m in alexnet.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert alexnet.input_size == 64 and alexnet.default_layer == "fc6"


def test_small_alexnet_features_and_embedding(alexnet):
    x = torch.randn(4, 3, 64, 64)
    alexnet.eval()
    with torch.no_grad():
        assert alexnet.features(x, "conv5").shape == (4, 192 * 7 * 7)
        fc6 = alexnet.features(x)  # default: the probe layer, after BN + ReLU
        assert fc6.shape == (4, 4096) and fc6.min() >= 0
        assert alexnet.features(x, "fc7").shape == (4, 4096)
        z = alexnet(x)
    assert z.shape == (4, 128)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(4))
    with pytest.raises(ValueError, match="unknown layer"):
        alexnet.features(x, "fc9")


def test_small_alexnet_width_and_input_size():
    net = SmallAlexNet(width=0.125, input_size=32)
    assert net.features(torch.randn(2, 3, 32, 32), "conv5").shape == (2, 24 * 3 * 3)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 128)


def test_resnet50_has_torchvision_layout():
    ours = build_encoder("resnet50")
    ref = torchvision.models.resnet50()
    mine = {k: v.shape for k, v in ours.state_dict().items() if not k.startswith("head.")}
    theirs = {k: v.shape for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    assert mine == theirs
    ref.load_state_dict(ours.state_dict(), strict=False)  # loads into torchvision as-is
    assert ours.feat_dim == 2048 and ours.default_layer == "pool" and ours.input_size == 224


def test_small_resnet_variant():
    enc = build_encoder("resnet18-s", width=0.25, input_size=32)
    assert enc.conv1.kernel_size == (3, 3) and enc.conv1.stride == (1, 1)
    assert isinstance(enc.maxpool, nn.Identity)
    x = torch.randn(3, 3, 32, 32)
    assert enc.features(x).shape == (3, 128)  # 512 · 0.25
    assert enc.features(x, "layer3").shape == (3, 64)
    assert enc(x).shape == (3, 128) and enc.input_size == 32
    plain = build_encoder("resnet18", head="none")
    assert plain(torch.randn(2, 3, 64, 64)).shape == (2, 512)


def test_unknown_arch_and_bad_options():
    with pytest.raises(UnknownNameError, match="did you mean"):
        build_encoder("resnet5O")
    with pytest.raises(NoisevisionError, match="bad options"):
        build_encoder("smallalexnet", depth=3)


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(1)
    enc = build_encoder("resnet18-s", width=0.125, input_size=32)
    enc.train()
    enc(torch.randn(8, 3, 32, 32))  # move BN running stats away from their init
    path = save_encoder(tmp_path / "enc.pt", enc, {"data": "test", "epochs": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["enc.pt"]  # no temporary file left
    loaded, meta = load_encoder(path)
    recipe = meta.pop("recipe")
    assert meta == {"data": "test", "epochs": 3}
    assert recipe.input_size == 32 and recipe.layer == "pool" and recipe.protocol == "paper"
    assert loaded.arch == "resnet18-s" and loaded.input_size == 32
    x = torch.randn(2, 3, 32, 32)
    enc.eval(), loaded.eval()
    torch.testing.assert_close(loaded.features(x), enc.features(x), rtol=0, atol=0)


def test_load_rejects_other_files(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(NoisevisionError, match="not a noisevision encoder"):
        load_encoder(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(NoisevisionError, match="not a readable encoder"):
        load_encoder(tmp_path / "junk.pt")
    with pytest.raises(NoisevisionError, match="does not exist"):
        load_encoder(tmp_path / "missing.pt")
    enc = build_encoder("resnet18-s", width=0.125)
    save_encoder(tmp_path / "enc.pt", enc, {})
    blob = torch.load(tmp_path / "enc.pt", weights_only=True)
    blob["arch_kwargs"] = {"width": 0.25}  # claims another shape than its weights
    torch.save(blob, tmp_path / "wrong.pt")
    with pytest.raises(NoisevisionError, match="does not match architecture") as info:
        load_encoder(tmp_path / "wrong.pt")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"arch_kwargs": {"width": 4096.0}}, r"has shape \[8.*\], the architecture \[262144"),
        ({"arch_kwargs": {"no_such_option": 1}}, "bad options for architecture"),
        ({"arch_kwargs": ["width"]}, "names no buildable architecture"),
        ({"state_dict": {"stem.0.weight": [1.0]}}, "holds no weights"),
    ],
)
def test_a_file_of_another_structure_is_one_line_before_any_allocation(tmp_path, change, match):
    """A damaged or forged file that asks for absurd widths is refused from its shapes (built on
    the meta device), not after allocating hundreds of GB."""
    save_encoder(tmp_path / "enc.pt", build_encoder("resnet18-s", width=0.125), {})
    blob = torch.load(tmp_path / "enc.pt", weights_only=True)
    blob.update(change)
    blob.pop("checksum", None)
    torch.save(blob, tmp_path / "forged.pt")
    with pytest.raises(NoisevisionError, match=match) as info:
        load_encoder(tmp_path / "forged.pt")
    assert "\n" not in str(info.value)


def test_recipe_is_stored_and_read_back(tmp_path):
    enc = build_encoder("resnet18-s", width=0.125, input_size=32)
    recipe = Recipe((0.1, 0.2, 0.3), (0.4, 0.5, 0.6), 32, 64, "mocov2", "pool", "simclr", "moco", "blobs")
    save_encoder(tmp_path / "enc.pt", enc, {"method": "simclr"}, recipe)
    _, meta = load_encoder(tmp_path / "enc.pt")
    assert meta["recipe"] == recipe
    assert torch.load(tmp_path / "enc.pt", weights_only=True)["version"] == 2


def test_version_1_files_are_refused_in_one_line(tmp_path):
    enc = build_encoder("resnet18-s", width=0.125, input_size=32)
    path = save_encoder(tmp_path / "v1.pt", enc, {"method": "moco_v2"})
    blob = torch.load(path, weights_only=True)
    del blob["recipe"], blob["checksum"]
    blob["version"] = 1
    torch.save(blob, path)
    with pytest.raises(NoisevisionError, match="v1.pt is an encoder file of format version 1") as info:
        load_encoder(path)
    assert "\n" not in str(info.value)


def test_an_encoder_saved_without_recipe_gets_its_methods_protocol(tmp_path):
    from noisevision.augment import IMAGENET_MEAN, PAPER_MEAN

    enc = build_encoder("resnet18-s", width=0.125, input_size=32)
    for method, mean, protocol in (
        ("moco_v2", IMAGENET_MEAN, "moco"),
        ("simclr", PAPER_MEAN, "paper"),
        ("", PAPER_MEAN, "paper"),
    ):
        _, meta = load_encoder(save_encoder(tmp_path / f"{method}.pt", enc, {"method": method}))
        assert meta["recipe"].mean == mean and meta["recipe"].protocol == protocol


def test_damaged_weights_are_refused(tmp_path):
    enc = build_encoder("resnet18-s", width=0.125, input_size=32)
    path = save_encoder(tmp_path / "enc.pt", enc, {})
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["conv1.weight"][0, 0, 0, 0] += 1.0  # one weight changed behind the checksum
    torch.save(blob, tmp_path / "changed.pt")
    with pytest.raises(NoisevisionError, match="do not match their checksum") as info:
        load_encoder(tmp_path / "changed.pt")
    assert "\n" not in str(info.value)
    blob["state_dict"]["conv1.weight"][0, 0, 0, 0] = float("nan")
    del blob["checksum"]
    torch.save(blob, tmp_path / "nan.pt")
    with pytest.raises(NoisevisionError, match="nan.pt: weights 'conv1.weight' hold NaN or Inf"):
        load_encoder(tmp_path / "nan.pt")


def test_bytes_overwritten_in_the_middle_never_load_quietly(tmp_path):
    enc = build_encoder("resnet18-s", width=0.25, input_size=32)
    path = save_encoder(tmp_path / "enc.pt", enc, {})
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(range(256)) * 16
    path.write_bytes(bytes(data))
    with pytest.raises(NoisevisionError, match="enc.pt"):
        load_encoder(path)
