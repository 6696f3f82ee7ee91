"""`noisevision export`: an encoder's weights as safetensors for torchvision, timm or noisevision."""

from __future__ import annotations

from pathlib import Path

import typer

from noisevision.cli.root import app, console


@app.command()
def export(
    encoder: str = typer.Argument(..., help="Encoder file or training run folder."),
    fmt: str = typer.Option(..., "--format", help="{export-formats}."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Weights file to write (FILE.safetensors); its model card is written "
        "beside it (README.md, or FILE.README.md when the folder has another README.md).",
    ),
) -> None:
    """Write an encoder's weights as safetensors for torchvision, timm or noisevision, with a model card.

    torchvision and timm get the ResNet backbone (no projection head, no fc: load it into a model
    whose fc is nn.Identity(), as the card shows); noisevision keeps everything, and load_encoder
    and `noisevision eval` read the file back.
    """
    from noisevision.export import export_encoder

    done = export_encoder(encoder, fmt, out)
    parts = sorted({k.split(".")[0] for k in done.dropped})  # e.g. "head", the projection head
    dropped = f"; left out: {', '.join(parts)}" if parts else ""
    console.print(
        f"wrote {done.weights} ({done.format}, {done.tensors} tensors{dropped}) and its model card "
        f"{done.card}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
