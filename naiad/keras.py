"""``naiad.keras.Callback``: Naiad's Keras callback, by its short name
(``naiad.integrations.keras``, which imports no Keras)."""

from naiad.integrations.keras import Callback

__all__ = ["Callback"]
