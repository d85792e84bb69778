"""A framework's configuration as a run's params: flat keys, values a param can hold."""

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from naiad.core.names import MAX_KEY, MAX_PARAM_VALUE
from naiad.schemas.common import ParamValue

_NOT_KEY = re.compile(r"[^A-Za-z0-9 _\-./:]")


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, ParamValue]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``. A value a param cannot hold (a
    list, a path, an enum, ``nan``) becomes its text, clipped to what a param takes; a key
    keeps the characters a key may have (others become ``_``)."""
    flat: dict[str, ParamValue] = {}
    for key, value in config.items():
        name = _key(f"{prefix}{key}")
        if isinstance(value, Mapping):
            flat.update(flat_params(value, f"{name}."))
        elif value is None or isinstance(value, bool | int) or _finite(value):
            flat[name] = value
        else:
            flat[name] = _clip(value if isinstance(value, str) else str(value))
    return flat


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _key(text: str) -> str:
    key = _NOT_KEY.sub("_", text).replace("..", "._").replace("//", "/_")
    return ("_" + key if not key[:1].isalnum() and key[:1] != "_" else key)[:MAX_KEY]


def _clip(text: str) -> str:
    while len(json.dumps(text)) > MAX_PARAM_VALUE:
        text = text[: len(text) * 3 // 4]
    return text
