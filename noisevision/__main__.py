"""`python -m noisevision …`: the same command line as `noisevision …`."""

from noisevision.cli import main

main()
