"""A fast synthetic objective (examples/tuning/objective.py as a SageMaker script): a smooth
bowl over lr (log scale), width and activation, best 1.0 at lr=0.01, width=3, gelu,
approached step by step; each step prints the line the tuner's metric regex reads."""

import argparse
import math
import time

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--width", type=int)
parser.add_argument("--act")
parser.add_argument("--steps", type=int, default=4)
args = parser.parse_args()
final = 1.0 - 0.15 * math.log10(args.lr / 0.01) ** 2 - 0.05 * (args.width - 3) ** 2
final -= {"gelu": 0.0, "relu": 0.1, "tanh": 0.3}[args.act]
for step in range(args.steps):
    print(f"step {step} score={final * (1.0 - math.exp(-(step + 1) / 2.0)):.6f}", flush=True)
    time.sleep(0.05)
