"""The search loop on Optuna: a study in a storage (SQLite in the output folder by default, or any
database URL), seeded samplers, pruning per epoch, failed and interrupted trials.

Several processes — on one machine or many, or the ranks of a torchrun job — search one study
when they share a storage: each asks Optuna for its next trial until the study holds `--trials`
finished ones. A run killed mid-trial is picked up where it stopped: on the same machine its
trial is marked interrupted at once and run again with the same parameters (its training resumes
from its checkpoint); elsewhere Optuna's heartbeat does the same after the grace period.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna

from noisevision.errors import FieldError, NoisevisionError, StopRequested
from noisevision.locks import waiting_lock
from noisevision.logs import get_logger
from noisevision.reproduce.plan import generation_res
from noisevision.search import objectives as obj
from noisevision.search.space import Space, build_space

log = get_logger(__name__)

HEARTBEAT_S = 30  # a running trial tells the storage it is alive this often
GRACE_S = 120  # … and is taken for dead (failed, then retried) this long after its last sign
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")


@dataclass
class SearchSettings:
    """What `noisevision search` is told; every default here and nowhere else."""

    name: str
    params: tuple[str, ...] = ()  # --param KEY=LOW..HIGH | KEY=a,b,c | KEY=VALUE
    trials: int = 20
    timeout: float | None = None  # seconds after which this process starts no new trial
    objective: str = "fast"
    budget: str = "tiny"  # the training preset a probe objective pre-trains with
    images: int | None = None  # pre-training images (None: the budget's)
    epochs: int | None = None  # pre-training epochs (None: the budget's)
    dataset: str = "fashion-mnist"
    val_images: int = 2000  # validation images carved from the real set's training part
    probe_images: int = 5000  # labelled training images the probes fit on
    test_images: int = 2000  # test images the final comparison is scored on
    test_seeds: int = 3  # pre-training seeds of the final comparison
    compare: tuple[str, ...] = ()  # other generators measured beside both on held-out data
    analysis_images: int = 512  # images per generator for a measure objective and the report's analysis
    seed: int = 0
    sampler: str = "tpe"
    pruner: str = "median"
    storage: str | None = None  # None: sqlite:///OUT/study.db
    study: str | None = None  # None: the output folder's name
    device: str = "auto"
    logger: str = "none"  # trackers of each trial's training run
    report: bool = True  # after the trials: the test comparison and report.md (workers: False)

    def check(self) -> None:
        from noisevision.data.eval_datasets import DATASETS

        obj.OBJECTIVES.entry(self.objective)
        DATASETS.entry(self.dataset.partition(":")[0])
        if self.sampler not in SAMPLERS:
            raise FieldError(
                "sampler", f"{{field}} must be one of {', '.join(SAMPLERS)}, not '{self.sampler}'"
            )
        if self.pruner not in PRUNERS:
            raise FieldError("pruner", f"{{field}} must be one of {', '.join(PRUNERS)}, not '{self.pruner}'")
        for key in ("trials", "val_images", "probe_images", "test_images", "test_seeds", "analysis_images"):
            if getattr(self, key) < 1:
                raise FieldError(key, f"{{field}} must be at least 1, not {getattr(self, key)}")
        if self.analysis_images < 20:
            raise FieldError("analysis_images", f"{{field}} must be at least 20, not {self.analysis_images}")
        if self.timeout is not None and not self.timeout > 0:
            raise FieldError("timeout", f"{{field}} must be a positive number of seconds, not {self.timeout}")
        for key in ("images", "epochs"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise FieldError(key, f"{{field}} must be at least 1, not {getattr(self, key)}")

    def identity(self) -> dict[str, Any]:
        """What defines the study's trials: a study reopened with other values is refused."""
        keep = (
            "name",
            "params",
            "objective",
            "budget",
            "images",
            "epochs",
            "dataset",
            "val_images",
            "probe_images",
        )
        out = {k: v for k, v in asdict(self).items() if k in keep}
        return {**out, "params": list(self.params), "seed": self.seed, "sampler": self.sampler}


@dataclass
class Plan:
    """A checked search: its space, objective and the study's place."""

    settings: SearchSettings
    space: Space
    objective: obj.Objective
    out: Path
    storage_url: str
    study_name: str
    budget: obj.Budget | None = None
    res: int = 64


def plan(settings: SearchSettings, out: Path) -> Plan:
    """Every check that needs no trial: NoisevisionError (one line) before any work."""
    from noisevision import generators
    from noisevision.io import check_output_folder
    from noisevision.tracking import parse_loggers

    settings.check()
    if ":" in settings.name or settings.name not in generators.GENERATORS:
        generators.spec(settings.name.partition(":")[0])  # an unknown name: "did you mean …"
        raise NoisevisionError(
            f"search a registered generator name, not '{settings.name}': "
            "fix a parameter with --param KEY=VALUE"
        )
    space = build_space(settings.name, settings.params)
    for (
        other
    ) in settings.compare:  # an unknown name or an untrainable one: one line now, not after the trials
        obj.Budget(settings.budget, _overrides(settings), settings.device, settings.logger).config(
            other, out / "test" / "check", settings.seed
        ).validate()
    objective = obj.OBJECTIVES.get(settings.objective)
    check_output_folder(out)
    parse_loggers(settings.logger)  # an unknown or missing tracker: one line now
    budget = obj.Budget(settings.budget, _overrides(settings), settings.device, settings.logger)
    cfg = budget.config(settings.name, out / "trials" / "check", settings.seed)
    cfg.validate()
    if objective.target == "finetune" and cfg.method != "supervised":
        log.warning(f"fine-tuning a self-supervised encoder of the '{settings.budget}' budget")
    url = settings.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    return Plan(
        settings, space, objective, out, url, settings.study or out.resolve().name, budget, cfg.res or 64
    )


def _overrides(s: SearchSettings) -> dict[str, Any]:
    return {k: v for k, v in (("num_images", s.images), ("epochs", s.epochs)) if v is not None}


# ---------------------------------------------------------------------------------- storage
def open_study(p: Plan) -> Any:
    """The study in its storage, created or reopened; NoisevisionError (one line) when the storage
    cannot be reached or holds a study of other settings."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    local = p.storage_url.startswith("sqlite:///")
    if local:
        Path(p.storage_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # processes started together would race to create the tables and to record the study's
    # settings: on one machine they take turns (a file lock), across machines they retry
    with waiting_lock(p.out / "study.lock") if local else contextlib.nullcontext():
        for attempt in range(OPEN_TRIES):
            try:
                return _open(p)
            except NoisevisionError as exc:
                if attempt == OPEN_TRIES - 1 or not _is_race(exc.__cause__):
                    raise
                time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


OPEN_TRIES = 5


def _is_race(exc: BaseException | None) -> bool:
    """A database error another process's simultaneous creation causes (worth a retry), not an
    unreachable server (one line at once)."""
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return True
    return isinstance(exc, sqlalchemy.exc.OperationalError) and "locked" in str(exc)


def _open(p: Plan) -> Any:
    """open_study's work, once: the storage, the study, its recorded settings."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat's
            storage = optuna.storages.RDBStorage(
                p.storage_url,
                engine_kwargs={"connect_args": {"timeout": 60}}
                if p.storage_url.startswith("sqlite")
                else None,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
        study = optuna.create_study(
            storage=storage,
            study_name=p.study_name,
            direction=p.objective.direction,
            sampler=TrialSeeded(p.settings.sampler, p.settings.seed),
            pruner=_pruner(p),
            load_if_exists=True,
        )
    except ImportError as exc:
        raise NoisevisionError(f"storage {_safe_url(p.storage_url)} needs a database driver: {exc}") from None
    except Exception as exc:  # SQLAlchemy's connection errors, a malformed URL
        if isinstance(exc, NoisevisionError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NoisevisionError(f"cannot open storage {_safe_url(p.storage_url)}: {first}") from exc
    recorded = study.user_attrs.get("noisevision")
    mine = p.settings.identity()
    if recorded is None:
        study.set_user_attr("noisevision", mine)
        defaults = p.space.default_params()
        if defaults is not None:  # the defaults first: the yardstick every trial is compared with
            study.enqueue_trial(defaults, user_attrs={"defaults": True})
    elif recorded != mine:
        diff = ", ".join(f"{k} {recorded.get(k)!r} → {mine[k]!r}" for k in mine if recorded.get(k) != mine[k])
        raise NoisevisionError(
            f"study '{p.study_name}' holds a search of other settings ({diff}): use another --out or --study"
        )
    return study


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.partition(':')[0]}:***@{tail}"


def _pruner(p: Plan) -> Any:
    if p.settings.pruner == "none" or p.objective.kind != "probe":
        return optuna.pruners.NopPruner()
    if p.settings.pruner == "hyperband":
        epochs = p.budget.config(p.settings.name, p.out, 0).epochs if p.budget else 3
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(2, epochs))
    return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)


class TrialSeeded(optuna.samplers.BaseSampler):
    """An Optuna sampler whose random state is a function of (seed, trial number): a study that is
    interrupted and run again draws the same trials as one that ran straight through (a sampler
    seeded once would restart its random stream)."""

    def __init__(self, kind: str, seed: int):
        self.kind, self.seed = kind, seed
        self._by_trial: dict[int, Any] = {}

    def _for(self, number: int) -> Any:
        if number not in self._by_trial:
            seed = (self.seed * 1_000_003 + number) % 2**32
            self._by_trial = {  # keep the few trials of this process still running
                k: v for k, v in self._by_trial.items() if k > number - 8
            }
            self._by_trial[number] = (
                optuna.samplers.TPESampler(seed=seed)
                if self.kind == "tpe"
                else optuna.samplers.RandomSampler(seed=seed)
            )
        return self._by_trial[number]

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self._for(trial.number).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        return self._for(trial.number).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        return self._for(trial.number).sample_independent(study, trial, name, distribution)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._for(trial.number).before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._for(trial.number).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # Optuna calls it for n_jobs > 1: the seeds stay per trial
        pass


# ---------------------------------------------------------------------------------- the loop
def counted(study: Any) -> int:
    """Trials that count towards --trials: finished, pruned, or failed for a reason of their own
    (not those interrupted, which run again)."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            n += 1
        elif t.state == TrialState.FAIL and "failure" in t.user_attrs:
            n += 1
    return n


def recover(study: Any) -> None:
    """Trials this machine left running (their process is gone) or that stopped on an interrupt:
    marked failed as interrupted and enqueued again with the same parameters, once."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials} | {
        t.system_attrs.get("failed_trial") for t in trials
    }
    for t in trials:
        stale = (
            t.state == TrialState.RUNNING
            and t.user_attrs.get("host") == host
            and not _alive(t.user_attrs.get("pid"))
        )
        if stale:
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        interrupted = stale or (t.state == TrialState.FAIL and "failure" not in t.user_attrs)
        if interrupted and t.number not in retried and t.params:
            log.info(f"trial {t.number} was interrupted: running it again")
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_trials(p: Plan, study: Any, progress: Callable[[str], None] | None = None) -> None:
    """Ask for trials until the study holds `trials` counted ones (other processes may add some),
    or, with a timeout, until that many seconds have passed (the trial running then finishes)."""
    recover(study)
    data = _validation(p) if p.objective.kind == "probe" else None
    start = time.monotonic()
    while (done := counted(study)) < p.settings.trials:
        if p.settings.timeout is not None and time.monotonic() - start >= p.settings.timeout:
            log.info(f"--timeout reached after {done} trials: no new trial")
            break
        if progress is not None:
            progress(f"trial {done + 1} of {p.settings.trials}")
        study.optimize(
            lambda trial: objective(p, trial, data),
            n_trials=1,
            catch=(obj.TrialFailed,),
            gc_after_trial=False,
        )


def _validation(p: Plan) -> Any:
    from noisevision.data.eval_datasets import load_eval_dataset

    s = p.settings
    return obj.splits(load_eval_dataset(s.dataset), s.val_images, s.probe_images, s.test_images, s.seed)[
        "validation"
    ]


def objective(p: Plan, trial: Any, data: Any) -> float:
    """One trial: its generator name, then the objective (TrialFailed: recorded with its reason)."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    values = p.space.suggest(trial)
    name = p.space.name(values)
    trial.set_user_attr("generator", name)
    log.info(f"trial {trial.number}: {name}")
    s = p.settings
    try:
        obj.check_not_blank(name, generation_res(name, p.res), s.seed, s.device)
        if p.objective.kind == "measure":
            return obj.measure_value(
                name,
                p.objective.target,
                s.dataset,
                s.analysis_images,
                p.res,
                s.seed,
                p.out / "analysis-cache",
                s.device,
            )

        def report(epoch: int, top1: float) -> None:
            trial.report(top1, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch} ({p.objective.target} {top1:.2f})")

        assert p.budget is not None
        run_dir = p.out / "trials" / obj.folder_name(name)
        return obj.pretrain_and_probe(name, run_dir, p.budget, s.seed, data, p.objective.target, report)
    except (StopRequested, optuna.TrialPruned):
        raise
    except (NoisevisionError, RuntimeError, MemoryError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        trial.set_user_attr("failure", reason)
        log.warning(f"trial {trial.number} failed: {reason}")
        raise obj.TrialFailed(reason) from exc
