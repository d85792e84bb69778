"""The handler the SDK repacks into model.tar.gz's code/: model_fn only, so requests take
the inference toolkit's default NPY decoding and encoding (and Naiad's batching)."""

import os

import torch


def model_fn(model_dir: str) -> torch.nn.Module:
    return torch.jit.load(os.path.join(model_dir, "model.pt"))
