"""A tf.keras script on two processes of one host (torchrun starts them): each sets its
TF_CONFIG from its rank, so both join one MultiWorkerMirroredStrategy and train as one."""

import json
import os

import numpy as np
import tensorflow as tf

strategy = tf.distribute.MultiWorkerMirroredStrategy()
task = json.loads(os.environ["TF_CONFIG"])["task"]
rng = np.random.default_rng(0)
x = rng.normal(size=(512, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
with strategy.scope():
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
model.fit(x, y, epochs=2, batch_size=64, verbose=0)
weight = float(model.layers[0].kernel.numpy().sum())
print(f"rank {os.environ['RANK']} index {task['index']} of "
      f"{strategy.num_replicas_in_sync} weight {weight:.6f}")  # fmt: skip
