"""ViTs through timm: registered names, features, the encoder file, meta-device builds, SSL methods."""

import pytest
import torch

from noisevision.errors import NoisevisionError
from noisevision.methods import build_method
from noisevision.models import ARCHS, build_encoder, load_encoder, save_encoder

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_vit(seed=0, **kw):
    torch.manual_seed(seed)
    return build_encoder("vit-tiny-p4", depth=2, input_size=16, **kw)


def test_vits_are_registered_with_their_timm_names():
    for name in ("vit-tiny", "vit-small", "vit-base", "vit-tiny-p4", "vit-small-p4"):
        assert ARCHS.entry(name).defaults["model"].startswith("vit_")
    with torch.device("meta"):  # load_encoder's shape check builds on the meta device
        enc = build_encoder("vit-base")
    assert next(enc.parameters()).device.type == "meta" and enc.feat_dim == 768


def test_vit_features_and_embedding():
    enc = tiny_vit().eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert enc.features(x).shape == (3, 192) and enc.default_layer == "cls"
        assert enc.features(x, "avg").shape == (3, 192)
        z = enc(x)
    assert z.shape == (3, 128)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))


def test_vit_round_trips_through_the_encoder_file(tmp_path):
    enc = tiny_vit(seed=3).eval()
    path = save_encoder(tmp_path / "vit.pt", enc, {"method": "simclr"})
    back, meta = load_encoder(path)
    assert back.arch == "vit-tiny-p4" and back.arch_kwargs == {"depth": 2, "input_size": 16}
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(back.eval().features(x), enc.features(x))
    assert meta["recipe"].layer == "cls"


@pytest.mark.parametrize("method", ["align_uniform", "moco_v2", "simclr"])
def test_ssl_methods_train_a_vit(method):
    m = build_method(method, tiny_vit(), seed=0)
    m.check_batch(8)
    g = torch.Generator().manual_seed(0)
    loss, terms = m(torch.randn(8, 3, 16, 16, generator=g), torch.randn(8, 3, 16, 16, generator=g))
    loss.backward()
    assert torch.isfinite(loss) and m.encoder.trunk.cls_token.grad is not None


def test_bn_groups_refuse_a_vit_in_one_line():
    m = build_method("simclr", tiny_vit(), bn_groups=2)
    with pytest.raises(NoisevisionError, match="no batch norm") as err:
        m.check_batch(8)
    assert "\n" not in str(err.value)
    build_method("simclr", tiny_vit(), bn_groups=1).check_batch(8)  # 1: no grouping, accepted


def test_bad_vit_options_are_one_line():
    with pytest.raises(NoisevisionError, match="multiple of the patch size"):
        build_encoder("vit-tiny-p4", input_size=30)


@pytest.mark.parametrize("method", ["moco_v2", "simclr"])
def test_a_training_run_trains_a_vit_and_writes_its_encoder_file(tmp_path, method):
    from noisevision.train import TrainConfig, train

    kw = {"queue_size": 16} if method == "moco_v2" else {}
    cfg = TrainConfig.from_preset(
        "tiny",
        data="test-blobs",
        out=str(tmp_path / "run"),
        arch="vit-tiny-p4",
        arch_kwargs={"depth": 1},
        method=method,
        method_kwargs=kw,
        input_size=16,
        res=32,
        num_images=16,
        batch_size=8,
        epochs=1,
        device="cpu",
        workers=0,
        progress=False,
    )
    out = train(cfg)
    enc, meta = load_encoder(out / "encoder.pt")
    assert enc.arch == "vit-tiny-p4" and meta["recipe"].layer == "cls" and meta["images_seen"] == 16
    torch.manual_seed(cfg.seed)  # the run's initial weights
    fresh = build_encoder("vit-tiny-p4", depth=1, input_size=16).state_dict()
    assert any(not torch.equal(fresh[k], v) for k, v in enc.state_dict().items())  # it trained
