"""The digits as a table (an ``id``, 64 pixel columns, a ``label``), and loaded into a
real PostgreSQL database or a DynamoDB table, for the data channel tests and examples."""

from typing import Any

import numpy as np
import pyarrow as pa

PIXELS = [f"p{i}" for i in range(64)]


def digits_table() -> pa.Table:
    """scikit-learn's bundled digits: 1,797 rows, nothing downloaded."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    columns = {name: x[:, i].astype(np.float32) for i, name in enumerate(PIXELS)}
    return pa.table({"id": np.arange(len(y)), **columns, "label": y.astype(np.int64)})


def load_postgres(url: str, name: str = "digits") -> None:
    """Create table ``name`` in the database at ``url`` and fill it with the digits."""
    from sqlalchemy import create_engine

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    names = ["id", *PIXELS, "label"]
    types = ", ".join(f"{c} {'bigint' if c in ('id', 'label') else 'real'}" for c in names)
    values = ", ".join(f"%({c})s" for c in names)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {name} ({types})")
            conn.exec_driver_sql(
                f"INSERT INTO {name} ({', '.join(names)}) VALUES ({values})",
                digits_table().to_pylist(),
            )
    finally:
        engine.dispose()


def load_dynamodb(client: Any, name: str, rows: int, columns: list[str]) -> None:
    """Create DynamoDB table ``name`` (hash key ``id``) with the first ``rows`` digits."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for row in digits_table().slice(0, rows).select(columns).to_pylist():
        client.put_item(TableName=name, Item={k: {"N": str(v)} for k, v in row.items()})
