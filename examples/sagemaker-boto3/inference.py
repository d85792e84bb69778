"""The endpoint's handler, by the SageMaker PyTorch inference toolkit's contract: the
replica calls model_fn once, then input_fn, predict_fn and output_fn for each request."""

import json
import os

import torch


def model_fn(model_dir: str) -> torch.nn.Module:
    return torch.jit.load(os.path.join(model_dir, "model.pt")).eval()


def input_fn(body: bytes, content_type: str) -> torch.Tensor:
    if content_type != "application/json":
        raise ValueError(f"send application/json, not {content_type}")
    images = json.loads(body)["images"]  # a list of 8x8 images, values in [0, 1]
    return torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8)


def predict_fn(images: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(images).softmax(1)


def output_fn(probabilities: torch.Tensor, accept: str) -> tuple[str, str]:
    best = probabilities.max(1)
    answer = {"digits": best.indices.tolist(), "confidence": best.values.tolist()}
    return json.dumps(answer), "application/json"
