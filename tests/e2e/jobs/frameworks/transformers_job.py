"""A tiny Hugging Face model (defined here, nothing downloaded) trained by ``Trainer``, as
a script written for the Trainer alone: it finds torchrun's environment itself (through
``accelerate``); ``NaiadCallback`` records the run."""

import os

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainingArguments

from naiad.integrations.transformers import NaiadCallback


class TinyConfig(PretrainedConfig):
    model_type = "tiny-regressor"

    def __init__(self, hidden: int = 16, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.hidden = hidden


class TinyRegressor(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        width = config.hidden
        self.net = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x, labels=None):  # type: ignore[no-untyped-def]
        out = self.net(x)
        loss = nn.functional.mse_loss(out, labels) if labels is not None else None
        return {"loss": loss, "logits": out}


class Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.x = torch.randn(512, 8, generator=torch.Generator().manual_seed(1))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.x[i].sum(0, keepdim=True)}


torch.manual_seed(0)
args = TrainingArguments(
    output_dir=os.path.join(os.environ.get("SM_OUTPUT_DATA_DIR", "."), "hf"),
    per_device_train_batch_size=16,
    per_device_eval_batch_size=64,
    num_train_epochs=2,
    learning_rate=0.01,
    logging_steps=2,
    save_strategy="steps",
    save_steps=10,
    eval_strategy="epoch",
    report_to=[],
    use_cpu=True,
    disable_tqdm=True,  # a job's log is a file: no progress bars
)
trainer = Trainer(
    model=TinyRegressor(TinyConfig()),
    args=args,
    train_dataset=Rows(),
    eval_dataset=Rows(),
    callbacks=[NaiadCallback()],
)
trainer.train()
if trainer.is_world_process_zero():
    steps = trainer.state.global_step
    print(f"transformers world size {args.world_size}, steps {steps}", flush=True)
