"""The evaluation job: a model version over a labelled channel, results into the job's run.

It logs accuracy, loss and macro precision/recall/F1 as metrics, and writes
``evaluation.json`` (per-class scores and the confusion matrix) as a run artifact,
which is where the registry reads them from.
"""

import json
import sys

import numpy as np

from naiad.runtime.context import context
from naiad.runtime.datasets import load_labelled

BATCH = 512


def fit_to_signature(x: np.ndarray, shape: list[int], dtype: str) -> np.ndarray:
    """Cast, and reshape rows stored flat (a CSV of 64 pixels for a [N, 1, 8, 8] model)."""
    want = [len(x), *shape[1:]]
    if list(x.shape) != want and -1 not in want[1:] and x[0].size == int(np.prod(want[1:])):
        x = x.reshape(want)
    return x.astype(dtype, copy=False)


def scores(y: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix (rows: true class)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
    return {
        "accuracy": float(np.mean(predicted == y)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y, predicted, labels=labels).tolist(),
    }


def main() -> None:
    import torch
    import torch.nn.functional as F

    from naiad.serving.loader import load_model

    ctx = context()
    channel = ctx.hyperparameters.get_str("channel", "test")
    model = load_model(ctx.channel("model"))
    spec = model.manifest.signature.inputs
    x, y = load_labelled(ctx.channel(channel))
    x = fit_to_signature(x, spec.shape, spec.dtype)
    print(f"evaluating {ctx.hyperparameters.get_str('model', '?')} on {len(x)} examples")
    logits = torch.cat([model(torch.from_numpy(x[i : i + BATCH])) for i in range(0, len(x), BATCH)])
    labels = torch.from_numpy(y.astype(np.int64))
    n_classes = logits.shape[1]
    classes = model.manifest.classes or [str(i) for i in range(n_classes)]
    result = scores(y, logits.argmax(dim=1).numpy(), classes)
    result["loss"] = float(F.cross_entropy(logits.float(), labels))
    result["examples"] = len(x)
    ctx.log_metrics(
        {k: result[k] for k in ("accuracy", "loss", "precision_macro", "recall_macro", "f1_macro")},
        step=0,
    )
    path = ctx.output_dir / "evaluation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    run = ctx.tracking_run()
    if run is not None:
        run.log_artifact(path)
        run.flush()
    print(
        f"accuracy {result['accuracy']:.4f}  loss {result['loss']:.4f}  "
        f"macro F1 {result['f1_macro']:.4f}"
    )
    print("confusion matrix (rows: true, columns: predicted):")
    for name, row in zip(classes, result["confusion_matrix"], strict=True):
        print(f"  {name:>6} " + " ".join(f"{v:4d}" for v in row))
    sys.stdout.flush()
