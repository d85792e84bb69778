"""A tf.keras regression model, trained as a SageMaker TensorFlow script would be: data
from ``SM_CHANNEL_*``, hyperparameters as arguments, the model saved to ``SM_MODEL_DIR``.
It imports nothing from Naiad; on several workers it trains under
MultiWorkerMirroredStrategy, whose TF_CONFIG the job sets.

    naiad train train.py --source examples/keras-tabular --nodes 2 --hp epochs=20 \
        --input train=data/keras-tabular/train --input test=data/keras-tabular/test
"""

import argparse
import glob
import json
import os
import tempfile

import numpy as np
import tensorflow as tf


def load(channel: str) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(glob.glob(os.path.join(os.environ[f"SM_CHANNEL_{channel.upper()}"], "*.csv")))
    rows = np.concatenate([np.loadtxt(f, delimiter=",", skiprows=1, ndmin=2) for f in files])
    return rows[:, :-1].astype("float32"), rows[:, -1:].astype("float32")


def build(features: int, hidden: int, dropout: float, lr: float) -> tf.keras.Model:
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(features,)),
            tf.keras.layers.Dense(hidden, activation="relu"),
            tf.keras.layers.Dropout(dropout),
            tf.keras.layers.Dense(hidden, activation="relu"),
            tf.keras.layers.Dropout(dropout),
            tf.keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss="mse", metrics=["mae"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=0.001)
    args = parser.parse_args()
    tf.keras.utils.set_random_seed(0)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    workers = strategy.num_replicas_in_sync
    x, y = load("train")
    x_test, y_test = load("test")
    with strategy.scope():
        model = build(x.shape[1], args.hidden, args.dropout, args.lr)
    model.fit(
        x, y, epochs=args.epochs, batch_size=args.batch_size * workers,
        validation_split=0.1, verbose=2,
    )  # fmt: skip
    loss, mae = model.evaluate(x_test, y_test, verbose=0)
    print(f"workers {workers} test loss {loss:.4f} mae {mae:.4f}")
    # Every worker saves (saving is collective); the chief's copy is the model.
    chief = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0) == 0
    target = os.environ["SM_MODEL_DIR"] if chief else tempfile.mkdtemp()
    model.save(os.path.join(target, "model.keras"))


if __name__ == "__main__":
    main()
