"""The digits CNN fitted by PyTorch Lightning, logging every step, with Naiad's logger or
Lightning's CSVLogger (``--logger naiad|csv``); prints ``BENCH_RESULT {...}`` with the
seconds ``fit`` took (process start and imports are not counted)."""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from digits_cnn import DigitsCNN, load_data, set_threads


class Digits(L.LightningModule):
    def __init__(self, lr: float = 0.002) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = DigitsCNN()

    def training_step(self, batch, _):  # type: ignore[no-untyped-def]
        x, y = batch
        loss = nn.functional.cross_entropy(self.model(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logger", choices=("naiad", "csv"), required=True)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    set_threads(1)
    torch.manual_seed(0)
    data = load_data()
    rows = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=16, shuffle=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.logger == "naiad":
            from naiad.integrations.lightning import NaiadLogger

            logger: L.pytorch.loggers.Logger = NaiadLogger(experiment="bench-lightning")
        else:
            logger = L.pytorch.loggers.CSVLogger(tmp)
        trainer = L.Trainer(
            accelerator="cpu",
            max_epochs=args.epochs,
            logger=logger,
            log_every_n_steps=1,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp,
        )
        started = time.perf_counter()
        trainer.fit(Digits(), rows)
        fit_s = time.perf_counter() - started
    result = {"fit_s": fit_s, "steps": trainer.global_step}
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
