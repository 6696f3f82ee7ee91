"""`python -m noisevision.cli` (e.g. under `torchrun -m noisevision.cli train …`): the console entry point."""

from noisevision.cli.entry import main

main()
