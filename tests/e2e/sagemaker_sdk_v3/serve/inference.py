"""The inference script ModelBuilder packs into the model as code/inference.py: the
SageMaker PyTorch inference toolkit's model_fn, the toolkit's defaults for the rest."""

import os

import torch


def model_fn(model_dir):
    model = torch.nn.Linear(2, 1)
    model.load_state_dict(torch.load(os.path.join(model_dir, "model.pt"), weights_only=True))
    return model.eval()
