"""A tiny Lightning regression, as a script written for Lightning alone: Lightning's DDP
strategy finds torchrun's environment itself; ``NaiadLogger`` records the run."""

import os

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from naiad.integrations.lightning import NaiadLogger


class Regressor(L.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def training_step(self, batch, _):  # type: ignore[no-untyped-def]
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, _):  # type: ignore[no-untyped-def]
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y), sync_dist=True)

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


torch.manual_seed(0)
x = torch.randn(512, 8, generator=torch.Generator().manual_seed(1))
rows = TensorDataset(x, x.sum(1, keepdim=True))
trainer = L.Trainer(
    accelerator="cpu",
    devices=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
    strategy="ddp" if int(os.environ.get("WORLD_SIZE", 1)) > 1 else "auto",
    max_epochs=3,
    log_every_n_steps=2,
    logger=NaiadLogger(),
    callbacks=[ModelCheckpoint(save_last=True)],
    enable_progress_bar=False,
    default_root_dir=os.environ.get("SM_OUTPUT_DATA_DIR", "."),
)
trainer.fit(Regressor(), DataLoader(rows, batch_size=32), DataLoader(rows, batch_size=128))
if trainer.is_global_zero:
    print(f"lightning world size {trainer.world_size}, steps {trainer.global_step}", flush=True)
