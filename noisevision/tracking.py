"""Experiment trackers behind one small interface: TensorBoard, Weights & Biases and MLflow
(`--logger tensorboard,wandb,mlflow` on train, eval and reproduce).

    trackers = open_trackers("tensorboard,mlflow", TrackedPlace(Path("runs/dl"), "dl", "train"))
    trackers.log_config(cfg.identity())
    trackers.log_metrics({"train/loss": 0.9, "lr": 0.1}, step=10)
    trackers.log_artifact(Path("runs/dl/encoder.pt"), "encoder")
    trackers.close()

Every tracker is a name in TRACKERS (`noisevision list loggers`) whose package is checked when the
names are parsed (`parse_loggers`), before any work: a missing one is a one-line error naming the
extra that installs it. Where a tracker keeps its records:
- tensorboard: FOLDER/tb (event files; `tensorboard --logdir FOLDER/tb`).
- wandb: the W&B project $WANDB_PROJECT (default noisevision), its local files in FOLDER/wandb;
  WANDB_MODE=offline keeps everything there (`wandb sync` uploads it later).
- mlflow: $MLFLOW_TRACKING_URI when set (a server), else a local store in the run or output folder
  (STORE/mlflow.db, artifacts in STORE/mlartifacts; `mlflow ui --backend-store-uri
  sqlite:///STORE/mlflow.db`), experiment $MLFLOW_EXPERIMENT_NAME (default noisevision).

FOLDER/trackers.json records each tracker's run id: a resumed training run, and an `eval` of its
encoder, continue the same tracked run instead of starting another.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisevision.errors import FieldError, NoisevisionError
from noisevision.io import atomic_write_text, recorded_path
from noisevision.logs import get_logger
from noisevision.registry import Registry

log = get_logger(__name__)

RECORD = "trackers.json"  # FOLDER/trackers.json: {tracker: {"id": …, …}} of the tracked runs there
DEFAULT = "tensorboard"
NONE = "none"  # `--logger none`: no tracker (a run folder still has metrics.jsonl)
DATABASE = "mlflow.db"  # MLflow's local store in a run or output folder
PROJECT = "noisevision"  # W&B project and MLflow experiment unless their environment variables say


@dataclass(frozen=True)
class TrackedPlace:
    """Where a tracked run lives: its folder (trackers.json, tb/, wandb/), the folder of local
    stores (MLflow's database: the run folder, or a reproduction's folder for all of its runs),
    its display name, what it tracks ("train", "eval", "reproduce") and, for a resumed run, the
    step it continues from (TensorBoard drops the events an interrupted attempt logged after it).
    A folder that is not one run's (the results of several `eval`s) starts a run every time."""

    folder: Path
    name: str
    kind: str
    store: Path | None = None
    start_step: int = 0
    resume: bool = True  # continue the runs FOLDER/trackers.json records, and record new ones there

    @property
    def store_folder(self) -> Path:
        return self.store if self.store is not None else self.folder


class Tracker:
    """One tracker's run. Values are floats; `step` is the global training step (0 outside
    training). Every method may be called from the training loop: none waits for a server."""

    def log_config(self, config: dict[str, Any]) -> None:
        """The run's settings (W&B config, MLflow params, a TensorBoard text)."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Scalars at `step`."""

    def log_image(self, key: str, path: Path, step: int) -> None:
        """A PNG file as an image (the run's sample grid)."""

    def log_artifact(self, path: Path, kind: str) -> None:
        """A file kept with the run (`kind`: "encoder", "report" …); TensorBoard has no artifacts."""

    def flush(self) -> None:
        """Make what was logged so far visible (at the end of every epoch)."""

    def close(self, status: str = "finished") -> None:
        """End the run: "finished", "failed" or "stopped" (resumable)."""

    def record(self) -> dict[str, Any]:
        """What trackers.json keeps to continue this run later ({} for none)."""
        return {}


# ---------------------------------------------------------------------------------------- trackers
class TensorBoardTracker(Tracker):
    def __init__(self, place: TrackedPlace, recorded: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events logged after the checkpoint by an interrupted attempt
        self.writer = SummaryWriter(str(place.folder / "tb"), purge_step=place.start_step or None)

    def log_config(self, config: dict[str, Any]) -> None:
        rows = "\n".join(f"| {k} | {json.dumps(v)} |" for k, v in _flat(config).items())
        self.writer.add_text("config", f"| setting | value |\n|---|---|\n{rows}", 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)

    def log_image(self, key: str, path: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))  # [H, W, 3] uint8
        self.writer.add_image(key, pixels, step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self, status: str = "finished") -> None:
        self.writer.close()


class WandbTracker(Tracker):
    """A W&B run: metrics against `global_step` (a resumed run logs its steps again from the
    checkpoint's, which W&B's own `_step` would refuse), the encoder as a "model" artifact."""

    def __init__(self, place: TrackedPlace, recorded: dict[str, Any]):
        import wandb

        self.wandb = wandb
        project = os.environ.get("WANDB_PROJECT") or recorded.get("project") or PROJECT
        try:
            self.run = wandb.init(
                project=project,
                name=place.name,
                id=recorded.get("id"),  # None: W&B draws a new id
                resume="allow",  # the recorded run continues
                dir=str(place.folder),
                job_type=place.kind,
                reinit="create_new",  # an eval after a training in one process: its own run
            )
        except Exception as exc:  # no API key, no network in online mode …
            raise NoisevisionError(
                f"W&B could not start a run ({' '.join(str(exc).split())}): run `wandb login`, or set "
                "WANDB_MODE=offline to keep the run on disk"
            ) from exc
        self.run.define_metric("*", step_metric="global_step")
        self.project = project

    def log_config(self, config: dict[str, Any]) -> None:
        self.run.config.update(config, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.run.log({**metrics, "global_step": step})

    def log_image(self, key: str, path: Path, step: int) -> None:
        self.run.log({key: self.wandb.Image(str(path)), "global_step": step})

    def log_artifact(self, path: Path, kind: str) -> None:
        artifact = self.wandb.Artifact(f"{kind}-{self.run.id}", type="model" if kind == "encoder" else kind)
        artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def close(self, status: str = "finished") -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)

    def record(self) -> dict[str, Any]:
        return {"id": self.run.id, "project": self.project}


class MlflowTracker(Tracker):
    """An MLflow run through MlflowClient (the process's global MLflow state is left alone).
    Metrics go out in batches without waiting (`synchronous=False`); `close` waits for them."""

    STATUS = {"finished": "FINISHED", "failed": "FAILED", "stopped": "KILLED"}

    def __init__(self, place: TrackedPlace, recorded: dict[str, Any]):
        from mlflow.tracking import MlflowClient

        store = place.store_folder
        server = os.environ.get("MLFLOW_TRACKING_URI")
        self.uri = server or mlflow_store_uri(store)
        # trackers.json names the store as the user would: a server's URI, or the local database
        # by its path from the folder (so that the record stays right when the folder moves)
        self.where = (
            {"tracking_uri": server} if server else {"store": recorded_path(store / DATABASE, place.folder)}
        )
        self.client = MlflowClient(self.uri)
        self.pending: list[Any] = []  # the unfinished asynchronous logging operations
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or PROJECT
        try:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is not None:
                experiment_id = experiment.experiment_id
            elif self.uri == mlflow_store_uri(store):  # the local store keeps its artifacts beside it
                experiment_id = self.client.create_experiment(
                    name, artifact_location=(store / "mlartifacts").resolve().as_uri()
                )
            else:
                experiment_id = self.client.create_experiment(name)
            self.run_id = (
                self._continue(recorded)
                or self.client.create_run(
                    experiment_id, run_name=place.name, tags={"noisevision.kind": place.kind}
                ).info.run_id
            )
        except Exception as exc:
            raise NoisevisionError(
                f"MLflow could not start a run at {self.uri} ({' '.join(str(exc).split())[:300]})"
            ) from exc

    def _continue(self, recorded: dict[str, Any]) -> str | None:
        """The recorded run, set running again, if it is in this tracking store."""
        run_id = recorded.get("id")
        if not run_id or any(recorded.get(k) != v for k, v in self.where.items()):
            return None
        try:
            self.client.get_run(run_id)
        except Exception:  # deleted, or the store was replaced
            return None
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def log_config(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        # parameters cannot change once logged: a continued run adds only the missing ones
        have = self.client.get_run(self.run_id).data.params
        params = [Param(k, json.dumps(v)[:6000]) for k, v in _flat(config).items() if k not in have]
        if params:
            self.client.log_batch(self.run_id, params=params)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.pending.append(self.client.log_batch(self.run_id, metrics=batch, synchronous=False))

    def log_image(self, key: str, path: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=key)

    def log_artifact(self, path: Path, kind: str) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=kind)

    def flush(self) -> None:
        for operation in self.pending:
            operation.wait()
        self.pending = []

    def close(self, status: str = "finished") -> None:
        self.flush()
        self.client.set_terminated(self.run_id, self.STATUS.get(status, "FINISHED"))

    def record(self) -> dict[str, Any]:
        return {"id": self.run_id, **self.where}


def mlflow_store_uri(store: Path) -> str:
    """The local MLflow store of folder `store`: a SQLite database (MLflow's own default kind)."""
    return f"sqlite:///{(store / DATABASE).resolve()}"


# ---------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class TrackerKind:
    """A tracker: its class, the module it needs, and the extra that installs it."""

    build: Callable[[TrackedPlace, dict[str, Any]], Tracker]
    module: str
    extra: str = ""  # "" : installed with noisevision


TRACKERS: Registry[TrackerKind] = Registry("logger")
TRACKERS.add(
    "tensorboard",
    TrackerKind(TensorBoardTracker, "tensorboard"),
    "TensorBoard event files in RUN/tb (the default)",
)
TRACKERS.add(
    "wandb",
    TrackerKind(WandbTracker, "wandb", "wandb"),
    "Weights & Biases: project $WANDB_PROJECT (noisevision); WANDB_MODE=offline keeps it in RUN/wandb",
)
TRACKERS.add(
    "mlflow",
    TrackerKind(MlflowTracker, "mlflow", "mlflow"),
    "MLflow: $MLFLOW_TRACKING_URI, else a local store RUN/mlflow.db (no server)",
)


def parse_loggers(text: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """'tensorboard,wandb' -> ('tensorboard', 'wandb'), each installed; 'none' -> (). Names already
    split are checked the same way (an empty tuple: none). One-line errors for an unknown name and
    for a tracker whose package is missing."""
    if isinstance(text, str):
        names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        if names == [NONE]:
            return ()
        if not names:
            raise FieldError(
                "logger", f"{{field}} '{text}' names no logger: give e.g. tensorboard,mlflow or none"
            )
    else:
        names = list(dict.fromkeys(text or ()))
    for name in names:
        kind = TRACKERS.get(name)  # an unknown name: "did you mean …"
        if importlib.util.find_spec(kind.module) is None:
            raise FieldError(
                "logger",
                f"{{field}} {name} needs the {kind.module} package: pip install 'noisevision[{kind.extra}]'",
            )
    return tuple(names)


# ---------------------------------------------------------------------------------------- fan-out
class Trackers(Tracker):
    """Every tracker of a run, called in turn; an empty one (no logger, or a rank other than 0)
    does nothing."""

    def __init__(self, trackers: dict[str, Tracker] | None = None):
        self.trackers = trackers or {}

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log_config(self, config: dict[str, Any]) -> None:
        for t in self.trackers.values():
            t.log_config(config)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for t in self.trackers.values():
            t.log_metrics(metrics, step)

    def log_image(self, key: str, path: Path, step: int) -> None:
        for t in self.trackers.values():
            t.log_image(key, path, step)

    def log_artifact(self, path: Path, kind: str) -> None:
        for t in self.trackers.values():
            t.log_artifact(path, kind)

    def flush(self) -> None:
        for t in self.trackers.values():
            t.flush()

    def close(self, status: str = "finished") -> None:
        for name, t in self.trackers.items():
            try:
                t.close(status)
            except Exception as exc:  # one tracker failing to close must not hide the others
                log.warning(f"{name} did not close cleanly: {' '.join(str(exc).split())}")
        self.trackers = {}


def read_record(folder: Path) -> dict[str, Any]:
    """FOLDER/trackers.json ({} where there is none, or it does not read as one)."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def open_trackers(names: str | tuple[str, ...] | list[str] | None, place: TrackedPlace) -> Trackers:
    """Start (or continue, from FOLDER/trackers.json) a tracked run in each tracker `names` lists,
    and record their ids there. A tracker that fails to start closes those already started."""
    chosen = parse_loggers(names)
    recorded = read_record(place.folder) if place.resume else {}
    started: dict[str, Tracker] = {}
    try:
        for name in chosen:
            entry = recorded.get(name)
            started[name] = TRACKERS.get(name).build(place, entry if isinstance(entry, dict) else {})
    except BaseException:
        Trackers(started).close("failed")
        raise
    new = {name: t.record() for name, t in started.items() if t.record()}
    if place.resume and any(recorded.get(k) != v for k, v in new.items()):
        atomic_write_text(place.folder / RECORD, json.dumps({**recorded, **new}, indent=1) + "\n")
    return Trackers(started)


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"arch_kwargs": {"width": 0.25}} -> {"arch_kwargs.width": 0.25}."""
    flat: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict) and v:
            flat.update(_flat(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


__all__ = [
    "TRACKERS",
    "MlflowTracker",
    "TensorBoardTracker",
    "TrackedPlace",
    "Tracker",
    "TrackerKind",
    "Trackers",
    "WandbTracker",
    "mlflow_store_uri",
    "open_trackers",
    "parse_loggers",
    "read_record",
]
