"""`noisevision search`: trials recorded in the study, the same trials from the same command (also
after an interruption), failures recorded, several processes on one storage, bad input refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from noisevision.errors import NoisevisionError
from noisevision.search import SearchSettings, plan, search
from noisevision.search import objectives as obj
from noisevision.search.study import counted, open_study, run_trials

pytestmark = pytest.mark.usefixtures("one_thread_module")

# a training-free objective on few images: trials of seconds
QUICK = dict(objective="coverage", analysis_images=24, test_seeds=2, val_images=100, probe_images=100)


def _trials(out: Path, **kw) -> list[tuple[str, float | None]]:
    p = plan(SearchSettings("dead_leaves-squares", **{**QUICK, **kw, "report": False}), out)
    study = open_study(p)
    run_trials(p, study)
    return [(t.user_attrs.get("generator"), t.value) for t in study.get_trials()]


def test_same_command_same_trials_also_when_resumed(tmp_path):
    straight = _trials(tmp_path / "a", trials=3)
    assert len(straight) == 3 and straight[0][0] == "dead_leaves-squares"  # the defaults first
    assert len({name for name, _ in straight}) == 3
    assert straight == _trials(tmp_path / "b", trials=3)
    # stopped after two trials, then run again with the full count: the same three trials
    _trials(tmp_path / "c", trials=2)
    assert _trials(tmp_path / "c", trials=3) == straight


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path, monkeypatch):
    real = obj.check_not_blank

    def blank_for_big_shapes(name, res, seed, device):
        if "sigma" in name:
            raise obj.TrialFailed(f"{name} renders blank images (each one flat colour)")
        real(name, res, seed, device)

    monkeypatch.setattr(obj, "check_not_blank", blank_for_big_shapes)
    p = plan(SearchSettings("dead_leaves-squares", trials=3, **QUICK), tmp_path)
    result = search(p)
    assert result["generator"] == "dead_leaves-squares"
    study = open_study(p)
    failed = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all("renders blank images" in t.user_attrs["failure"] for t in failed)
    assert counted(study) == 3
    report = (tmp_path / "report.md").read_text()
    assert "renders blank images" in report and "Validation against held-out data" in report
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["held_out"]["names"]["best"] == "dead_leaves-squares"
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "history.png").is_file()
    lines = (tmp_path / "trials.csv").read_text().splitlines()
    assert lines[0].startswith("number,state,generator,value") and len(lines) == 1 + len(study.get_trials())


def test_an_interrupted_trial_runs_again_with_its_parameters(tmp_path):
    p = plan(SearchSettings("dead_leaves-squares", trials=2, **{**QUICK, "report": False}), tmp_path)
    study = open_study(p)
    trial = study.ask()  # a trial whose process died: it claims this host and a pid that is gone
    trial.suggest_float("sigma", 1.5, 5.0)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    trial.set_user_attr("host", os.uname().nodename)
    trial.set_user_attr("pid", int(dead.stdout))
    sigma = trial.params["sigma"]
    run_trials(p, study)
    trials = study.get_trials()
    again = [t for t in trials if t.user_attrs.get("retry_of") == trial.number]
    assert len(again) == 1 and again[0].params["sigma"] == sigma
    assert trials[trial.number].user_attrs.get("interrupted") is True
    assert counted(study) == 2


def test_several_processes_search_one_study(tmp_path):
    out = tmp_path / "shared"
    args = [sys.executable, "-m", "noisevision", "search", "dead_leaves-squares", "--out", str(out)]
    args += ["--trials", "4", "--objective", "coverage", "--analysis-images", "24", "--no-report"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
    p = plan(SearchSettings("dead_leaves-squares", trials=4, objective="coverage", analysis_images=24), out)
    study = open_study(p)
    trials = study.get_trials()
    assert 4 <= counted(study) <= 5  # each process stops once the study holds 4
    assert len({t.number for t in trials}) == len(trials)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_a_study_of_other_settings_is_refused(tmp_path):
    _trials(tmp_path, trials=1)
    with pytest.raises(NoisevisionError, match="holds a search of other settings"):
        _trials(tmp_path, trials=1, seed=1)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--param", "nope=1..2"], "no searchable parameter 'nope'"),
        (["--param", "sigma=4..2"], "LOW 4 is above HIGH 2"),
        (["--param", "sigma="], "empty range"),
        (["--storage", "mysql://user@127.0.0.1:1/none"], "storage"),
        (["--objective", "accuracy"], "unknown objective"),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--timeout", "0"], "--timeout must be a positive number"),
    ],
)
def test_bad_input_is_one_line_before_any_trial(run_cli, tmp_path, args, words):
    code, out, err = run_cli("search", "dead_leaves-squares", "--out", tmp_path / "s", *args)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "trials").exists()


def test_a_probe_trial_pretrains_and_probes_the_validation_split(tmp_path, run_cli):
    code, out, err = run_cli(
        "search", "program-shader", "--out", tmp_path, "--trials", "1", "--images", "128", "--epochs", "1",
        "--val-images", "200", "--probe-images", "300", "--no-report",
    )  # fmt: skip
    assert code == 0, err
    (run,) = (tmp_path / "trials").iterdir()
    kept = json.loads((run / "objective.json").read_text())
    assert kept["probe"] == "fast" and ":300:200:" in kept["data"] and 0 < kept["top1"] <= 100
    assert f"best: program-shader (fast {kept['top1']:.4g})" in out and not (tmp_path / "report.md").exists()


@pytest.mark.slow
def test_probe_objective_end_to_end(tmp_path, run_cli):
    """One short pre-training per trial, the fast probe on the validation split, the held-out
    comparison on the test split: the whole loop of a probe objective."""
    code, out, err = run_cli(
        "search", "program-shader", "--out", tmp_path, "--trials", "2", "--images", "128", "--epochs", "2",
        "--val-images", "200", "--probe-images", "300", "--test-images", "200", "--test-seeds", "2",
        "--analysis-images", "24", "--param", "depth=2..4", "--compare", "dead_leaves-squares",
    )  # fmt: skip
    assert code == 0, err
    results = json.loads((tmp_path / "report.md").with_name("results.json").read_text())
    assert results["held_out"]["where"] == "test split"
    assert all(0 <= v <= 100 for v in results["held_out"]["values"]["defaults"])
    trials = results["trials"]
    assert trials[0]["generator"] == "program-shader" and len(trials) == 2
    assert all(t["state"] == "complete" for t in trials)
    assert "held out (test split)" in out
    against = results["held_out"]["against"]["dead_leaves-squares"]
    assert against["gain"]["n"] == 2 and "dead_leaves-squares" in (tmp_path / "report.md").read_text()


def test_a_trial_stopped_by_ctrl_c_runs_again(tmp_path, monkeypatch):
    p = plan(SearchSettings("dead_leaves-squares", trials=2, **{**QUICK, "report": False}), tmp_path)
    study = open_study(p)
    real = obj.check_not_blank

    def stop_on_the_second(name, res, seed, device):
        if name != "dead_leaves-squares":  # the defaults run first
            raise KeyboardInterrupt
        real(name, res, seed, device)

    monkeypatch.setattr(obj, "check_not_blank", stop_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        run_trials(p, study)
    stopped = study.get_trials()[-1]
    assert stopped.state == optuna.trial.TrialState.FAIL and "failure" not in stopped.user_attrs
    monkeypatch.undo()
    run_trials(p, open_study(p))
    trials = open_study(p).get_trials()
    again = [t for t in trials if t.user_attrs.get("retry_of") == stopped.number]
    assert len(again) == 1 and again[0].params == stopped.params and again[0].value is not None
    assert counted(open_study(p)) == 2


def test_a_generator_trains_at_the_budgets_resolution_or_its_nearest(tmp_path):
    budget = obj.Budget("tiny", {}, "cpu", "none")
    assert budget.config("program-shader", tmp_path, 0).res == 64
    assert budget.config("stylegan-oriented", tmp_path, 0).res == 128  # it renders 128, 256, 512 px
