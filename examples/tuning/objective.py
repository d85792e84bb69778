"""A fast synthetic objective for tuning: a smooth bowl over lr (log scale), width and
activation, approached step by step as training curves are, so early stopping has
intermediate values to judge. Its best score, 1.0, is at lr=0.01, width=3, gelu.

    naiad tune objective.py --source examples/tuning --space lr=log:1e-4:1 \\
        --space width=int:1:6 --space act=cat:relu,gelu,tanh --objective score:max \\
        --trials 12 --parallel 2 --prune asha --follow
"""

import math
import time

from naiad import runtime

ACTIVATIONS = {"gelu": 0.0, "relu": 0.1, "tanh": 0.3}


def main() -> None:
    ctx = runtime.context()
    hp = ctx.hyperparameters
    lr, width, act = hp.get_float("lr"), hp.get_int("width"), hp.get_str("act", "gelu")
    steps, pause = hp.get_int("steps", 8), hp.get_float("step_seconds", 0.1)
    final = 1.0 - 0.15 * math.log10(lr / 0.01) ** 2 - 0.05 * (width - 3) ** 2 - ACTIVATIONS[act]
    for step in range(steps):
        score = final * (1.0 - math.exp(-(step + 1) / 2.0))
        ctx.log_metrics({"score": score}, step=step)
        print(f"step {step} score={score:.6f}", flush=True)
        time.sleep(pause)


if __name__ == "__main__":
    main()
