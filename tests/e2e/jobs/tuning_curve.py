"""A trial for the tuning tests: a learning curve that rises to ``quality``.

Each step logs ``score`` (and prints it, for a regex objective) and leaves a checkpoint
file. With ``fail`` set it exits 1 at once; with ``fail_first`` the first attempt exits 1
after leaving a marker in checkpoints/, so the retry completes.
"""

import sys
import time

from naiad import runtime

ctx = runtime.context()
hp = ctx.hyperparameters
quality, steps = hp.get_float("quality"), hp.get_int("steps", 6)
pause = hp.get_float("step_seconds", 0.2)
if hp.get_bool("fail", False):
    print("failing on purpose", flush=True)
    sys.exit(1)
marker = ctx.checkpoint_dir / "attempted"
if hp.get_bool("fail_first", False) and not marker.exists():
    ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("1")
    sys.exit(1)
ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
for step in range(steps):
    score = quality * (step + 1) / steps
    ctx.log_metrics({"score": score}, step=step)
    print(f"step {step} score={score:.6f}", flush=True)
    (ctx.checkpoint_dir / "last-step.txt").write_text(str(step))
    time.sleep(pause)
