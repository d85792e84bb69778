"""A Keras 3 script (``import keras``) with Naiad's callback named in ``fit``, as the docs'
one-line way shows; it exports a SavedModel to ``SM_MODEL_DIR/1`` as TF Serving lays one
out. The job must not add a second callback, and the runner must describe the SavedModel."""

import os

import keras
import numpy as np

import naiad

rng = np.random.default_rng(0)
x = rng.normal(size=(256, 4)).astype("float32")
y = (x.sum(axis=1, keepdims=True) > 0).astype("float32")
keras.utils.set_random_seed(0)
model = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)]
)
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
model.fit(x, np.hstack([y, 1 - y]), epochs=2, batch_size=64, verbose=0,
          callbacks=[naiad.keras.Callback(log_every_n_batches=2)])  # fmt: skip
print(f"keras {keras.__version__}")
model.export(os.path.join(os.environ["SM_MODEL_DIR"], "1"))
