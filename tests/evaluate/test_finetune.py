"""Fine-tuning evaluation: it learns, is deterministic, records last and best, fails in one line."""

from __future__ import annotations

import pytest
import torch

from noisevision.data.eval_datasets import load_eval_dataset
from noisevision.errors import NoisevisionError
from noisevision.evaluate import ProbeSettings, evaluate, load_probe_model, random_encoder
from noisevision.evaluate.finetune import FDSL, lr_at
from noisevision.models import save_encoder

pytestmark = pytest.mark.usefixtures("one_thread")


def settings(**kw):
    values = dict(probes=("finetune",), finetune_epochs=3, finetune_batch_size=8, workers=0)
    return ProbeSettings(**{**values, **kw})


def tiny_vit(seed=0):
    return random_encoder("vit-tiny-p4", seed, depth=2, input_size=16)


def test_finetuning_a_vit_learns_and_is_deterministic(probe_set):
    data = load_eval_dataset(probe_set(8))
    runs = [evaluate(tiny_vit(), data, settings(), "cpu").probes["finetune"] for _ in range(2)]
    r = runs[0]
    assert r["best_top1"] >= 80 and r["top1"] == r["best_top1"] and r["reported"] == "best"
    assert len(r["per_epoch_top1"]) == 3 and r["last_top1"] == r["per_epoch_top1"][-1]
    assert r["per_epoch_top1"][r["best_epoch"] - 1] == r["best_top1"]
    assert runs[1]["per_epoch_top1"] == r["per_epoch_top1"] and runs[1]["train_loss"] == r["train_loss"]


def test_finetuning_leaves_the_given_model_alone_and_works_for_a_cnn(probe_set):
    model = random_encoder("smallalexnet", 0, width=0.0625, input_size=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = load_eval_dataset(probe_set(5))  # 10 images, batch 4: BN layers see batches of 2 and 4
    res = evaluate(model, data, settings(finetune_batch_size=4, finetune_epochs=2), "cpu")
    assert len(res.probes["finetune"]["per_epoch_top1"]) == 2
    assert "best of 2 epochs" in res.summary()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_scratch_baseline_takes_an_architecture_or_an_encoder_file(tmp_path, probe_set):
    model, meta = load_probe_model("scratch:vit-tiny-p4", input_size=16)
    assert meta["baseline"] == "scratch" and model.input_size == 16
    path = save_encoder(tmp_path / "vit.pt", tiny_vit(seed=5), {})
    model, meta = load_probe_model(f"scratch:{path}")  # that file's architecture, new weights
    assert model.arch_kwargs == {"depth": 2, "input_size": 16} and meta["baseline"] == "scratch"
    res = evaluate(model, load_eval_dataset(probe_set(4)), settings(finetune_epochs=1), "cpu", meta)
    assert 0 <= res.probes["finetune"]["top1"] <= 100
    # the seed draws the weights: the same for a seed, others for another
    weights = [load_probe_model("scratch:resnet18-s", seed=s)[0].state_dict() for s in (0, 0, 1)]
    name = next(k for k in weights[0] if k.endswith("weight"))
    assert torch.equal(weights[0][name], weights[1][name]) and not torch.equal(
        weights[0][name], weights[2][name]
    )


@pytest.mark.parametrize("baseline", ["raw-pixels", "mean-colors"])
def test_finetuning_a_fixed_baseline_is_one_line(probe_set, baseline):
    model, meta = load_probe_model(baseline, input_size=16)
    with pytest.raises(NoisevisionError, match="no trainable weights") as err:
        evaluate(model, load_eval_dataset(probe_set(2)), settings(), "cpu", meta)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("field", "value"), [("finetune_lr", -1.0), ("finetune_epochs", 0), ("finetune_epochs", 10**6)]
)
def test_bad_finetune_settings_are_one_line(field, value):
    with pytest.raises(NoisevisionError, match=field):
        settings(**{field: value}).check()


def test_schedule_warms_up_then_decays_to_the_floor():
    lrs = [lr_at(s, 100, 10, FDSL, 0.01) for s in range(100)]
    assert lrs[0] == pytest.approx(0.001) and lrs[9] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] == pytest.approx(FDSL.min_lr)


def test_cli_finetunes_a_scratch_vit_and_refuses_bad_input_in_one_line(tmp_path, run_cli, probe_set):
    import json

    data = probe_set(4)
    out = tmp_path / "ft.json"
    args = ("--dataset", data, "--probe", "finetune", "--workers", "0", "--no-progress", "--device", "cpu")
    vit = save_encoder(tmp_path / "vit.pt", tiny_vit(), {})  # scratch:FILE: its architecture
    code, stdout, err = run_cli("eval", f"scratch:{vit}", *args, "--finetune-epochs", "2", "-o", out)
    assert code == 0, err
    assert "finetune" in stdout and "best of 2 epochs" in stdout
    r = json.loads(out.read_text())["probes"]["finetune"]
    assert r["reported"] == "best" and len(r["per_epoch_top1"]) == 2 and "last_top1" in r
    for bad, hint in (
        (("raw-pixels",), "no trainable weights"),
        (("scratch:vit-tiny-p4", "--finetune-lr", "-1"), "--finetune-lr"),
    ):
        code, _, err = run_cli("eval", *bad, *args, "-o", tmp_path / "bad.json")
        assert code == 2 and hint in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad.json").exists()
