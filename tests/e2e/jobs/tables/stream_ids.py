"""Streams the train channel in every process (two DataLoader workers each) for two
epochs and prints the ids each rank saw, for the test to check exactly-once."""

import json

from torch.utils.data import DataLoader

from naiad import runtime


def rows_as_given(batch: list[dict[str, int]]) -> list[dict[str, int]]:
    return batch


def main() -> None:
    runtime.init_distributed()
    ctx = runtime.context()
    print("script started")
    rows = runtime.stream("train", shuffle_buffer=64, seed=ctx.hyperparameters.get_int("seed", 1))
    loader = DataLoader(rows, batch_size=32, num_workers=2, collate_fn=rows_as_given)
    for epoch in range(2):
        rows.set_epoch(epoch)
        ids = [row["id"] for batch in loader for row in batch]
        columns = json.dumps(sorted(rows.columns))
        print(f"epoch {epoch} rank {ctx.rank} columns {columns} ids {json.dumps(ids)}")


if __name__ == "__main__":
    main()
