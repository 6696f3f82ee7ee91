"""Model folders as the Hugging Face Hub holds them: what `export --out FOLDER` adds to the weights
(timm's config.json, the card's model-card metadata) and `export --push-to-hub`.

    noisevision export runs/sg --format timm --out hub/sg --push-to-hub me/sg-resnet50
    model = timm.create_model("hf-hub:me/sg-resnet50", pretrained=True)   # or "local-dir:hub/sg"

A folder holds model.safetensors, README.md (the card) and, for timm, config.json: the timm
architecture and its arguments, no classifier (the network never had one), and the preprocessing
the encoder was trained and probed with, in timm's `pretrained_cfg` terms.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import noisevision
from noisevision.errors import FieldError, NoisevisionError
from noisevision.io import check_output_folder
from noisevision.models.encoder_file import Recipe

HUB_WEIGHTS = "model.safetensors"  # a model folder's files, as the Hub and timm name them
HUB_CONFIG = "config.json"
HUB_CARD = "README.md"


@dataclass(frozen=True)
class HubCard:
    """What the card of a model folder says besides the weights: its licence (model-card metadata)
    and the name it is loaded by ("hf-hub:USER/NAME" once pushed, else "local-dir:FOLDER" as typed)."""

    license: str = "mit"
    repo: str | None = None
    folder: str = ""

    def model_id(self) -> str:
        return f"hf-hub:{self.repo}" if self.repo else f"local-dir:{self.folder}"

    def timm_lines(self) -> list[str]:
        """The card's first lines for a timm folder: the model and its preprocessing, by timm."""
        return [
            "```python",
            "import timm",
            f'model = timm.create_model("{self.model_id()}", pretrained=True)  # no classifier',
            "config = timm.data.resolve_data_config({}, model=model)  # the preprocessing of config.json",
            "preprocess = timm.data.create_transform(**config)  # resize, centre crop, normalise",
            "```",
            "",
            (
                "From this folder; once it is on the Hub (`noisevision export … --push-to-hub USER/NAME`), "
                'as `timm.create_model("hf-hub:USER/NAME", pretrained=True)`. Or the weights file alone:'
                if not self.repo
                else "Or the weights file alone:"
            ),
            "",
        ]


def eval_resize(input_size: int) -> int:
    """The shorter side the probes' test view resizes to before centre-cropping `input_size`."""
    from noisevision.evaluate.views import View

    return View(input_size, train=False).resize_to


def timm_hub_config(
    name: str,
    model_args: dict[str, Any],
    vit: bool,
    features: int,
    recipe: Recipe,
    first_conv: str | None = None,
) -> dict[str, Any]:
    """The config.json of a timm model folder (what `timm.create_model("hf-hub:…")` and
    "local-dir:…" read): timm architecture `name` built with `model_args` (a ViT, or a ResNet),
    without a classifier (`features` wide), and the preprocessing the encoder was trained and
    probed with (`recipe`); `first_conv` names the input convolution when it is not the default."""
    default_conv, classifier, pool = ("patch_embed.proj", "head", "token") if vit else ("conv1", "fc", "avg")
    first_conv = first_conv or default_conv
    size, resize = recipe.input_size, eval_resize(recipe.input_size)
    crop_pct = size / resize
    while math.floor(size / crop_pct) != resize:  # timm resizes to floor(input_size / crop_pct)
        crop_pct = math.nextafter(crop_pct, 0.0)
    return {
        "architecture": name,
        "num_classes": 0,
        "num_features": int(features),
        "global_pool": pool,
        "model_args": model_args,
        "pretrained_cfg": {
            "input_size": [3, size, size],
            "fixed_input_size": vit,  # a ViT's position embedding fixes its input size
            "interpolation": "bilinear",
            "crop_pct": crop_pct,
            "crop_mode": "center",
            "mean": list(recipe.mean),
            "std": list(recipe.std),
            "num_classes": 0,
            "first_conv": first_conv,
            "classifier": classifier,
        },
    }


def check_model_folder(out: Path) -> None:
    """A model folder is new, empty, or one written by an earlier export: pushed whole to the Hub, it
    must hold nothing else."""
    check_output_folder(out)
    ours = {HUB_WEIGHTS, HUB_CONFIG, HUB_CARD}
    others = sorted(p.name for p in out.iterdir() if p.name not in ours) if out.is_dir() else []
    if others:
        raise FieldError(
            "out",
            f"{{field}} {out} holds other files ({', '.join(others[:3])}): a model folder is uploaded "
            "whole, so give a new or empty folder (or a FILE.safetensors)",
        )


def check_push(out: Path, repo: str) -> None:
    """One-line errors for a push that cannot work, before the export writes anything: a weights
    file instead of a folder, a repository name that is not USER/NAME, huggingface_hub missing."""
    if out.suffix == ".safetensors":
        raise NoisevisionError(f"--push-to-hub uploads a model folder: give --out a folder, not {out}")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise NoisevisionError(f"--push-to-hub '{repo}' must name a repository as USER/NAME")
    _need_hub()


def _need_hub() -> None:
    if importlib.util.find_spec("huggingface_hub") is None:
        raise NoisevisionError("--push-to-hub needs huggingface_hub: pip install 'noisevision[hub]'")


def push_to_hub(folder: Path, repo: str, private: bool = False, message: str | None = None) -> str:
    """Upload a model folder to the Hugging Face Hub as model repository `repo` (created if need
    be); returns the URL of the commit. One-line errors for a missing huggingface_hub, a bad
    repository name, no login, or a refusal by the Hub."""
    _need_hub()
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo,
            folder_path=str(folder),
            repo_type="model",
            commit_message=message or f"noisevision {noisevision.__version__} export",
        )
    except Exception as exc:  # HfHubHTTPError, an invalid name, no token …: what the Hub said
        what = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise NoisevisionError(
            f"could not push {folder} to the Hub as {repo} ({what}): check the name (USER/NAME) and "
            "your login (huggingface-cli login, or HF_TOKEN)"
        ) from exc
    return str(getattr(commit, "commit_url", commit))


__all__ = [
    "HUB_CARD",
    "HUB_CONFIG",
    "HUB_WEIGHTS",
    "HubCard",
    "check_model_folder",
    "check_push",
    "eval_resize",
    "push_to_hub",
    "timm_hub_config",
]
