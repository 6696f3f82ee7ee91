"""Data plumbing: dataset folders written by `generate`, streams for training, evaluation sets."""
