"""``python bench/litserve_app.py MODEL_DIR --port P``: LitServe serving a TorchScript model.

The model ``bench/serving.py`` measures, served by LitServe as its docs recommend for
throughput: batching (``max_batch_size`` and ``batch_timeout`` on the ``LitAPI``, where
LitServe 0.2.x takes them), ``fast_queue=True`` (ZeroMQ between the API server and the
worker; its docs' advice above 100 requests/s), one worker on the CPU with one torch
intra-op thread (as Naiad's replica runs it), one API server. It answers Naiad's JSON
shape on ``/predict``: ``{"inputs": [image]}`` in, ``{"predictions": [[scores]]}`` out,
one image a request (LitServe batches requests, not rows: its default ``batch`` stacks
one tensor per request).

LitServe is imported here only: this script runs as its own process, and nothing in
``naiad`` imports it.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import litserve as ls
import torch


class TorchScriptAPI(ls.LitAPI):
    def __init__(self, model_dir: Path, **options: Any) -> None:
        super().__init__(**options)
        self.model_dir = model_dir

    def setup(self, device: str) -> None:
        torch.set_num_threads(1)
        manifest = json.loads((self.model_dir / "naiad-model.json").read_text())
        if manifest["format"] != "torchscript":
            raise ValueError(f"a TorchScript model, not {manifest['format']}")
        path = self.model_dir / manifest["file"]
        self.model = torch.jit.load(str(path), map_location=device).eval()

    def decode_request(self, request: dict[str, Any]) -> torch.Tensor:
        inputs = request["inputs"]
        if len(inputs) != 1:
            raise ValueError(f"one image a request, got {len(inputs)}")
        return torch.tensor(inputs[0], dtype=torch.float32)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(x)

    def encode_response(self, output: torch.Tensor) -> dict[str, Any]:
        return {"predictions": [output.tolist()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="written by naiad.runtime.save_model")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch", type=int, default=64, help="LitAPI max_batch_size")
    parser.add_argument(
        "--batch-timeout-ms", type=float, default=5.0, help="LitAPI batch_timeout, in ms"
    )
    args = parser.parse_args()
    api = TorchScriptAPI(
        args.model_dir, max_batch_size=args.max_batch, batch_timeout=args.batch_timeout_ms / 1000
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, fast_queue=True)
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
    )


if __name__ == "__main__":
    main()
