"""Reads the train channel whole and prints what it holds."""

from naiad import runtime


def main() -> None:
    print("script started")
    table = runtime.table("train")
    print(f"rows {table.num_rows} columns {','.join(table.column_names)}")
    labels = table.column("label").to_pylist() if "label" in table.column_names else []
    print(f"labels {sorted(set(labels))}")


if __name__ == "__main__":
    main()
