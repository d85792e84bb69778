"""A framework's configuration flattened into params a run can hold."""

import json

from naiad.core.names import MAX_PARAM_VALUE, check_key
from naiad.integrations.params import flat_params


def test_nested_configs_flatten_and_odd_values_become_text() -> None:
    params = flat_params(
        {
            "optim": {"lr": 0.1, "betas": (0.9, 0.99)},
            "epochs": 3,
            "fp16": False,
            "seed": None,
            "warmup": float("nan"),
            "name@run": "a",
            "notes": "x" * 10_000,
        }
    )
    assert params["optim.lr"] == 0.1 and params["epochs"] == 3 and params["fp16"] is False
    assert params["optim.betas"] == "(0.9, 0.99)" and params["warmup"] == "nan"
    assert params["seed"] is None and params["name_run"] == "a"
    assert len(json.dumps(params["notes"])) <= MAX_PARAM_VALUE
    for key in params:
        check_key(key, "Param key")  # the server would take every one
