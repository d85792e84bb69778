"""Tabular data where it lives: Parquet/CSV datasets, SQL queries and DynamoDB tables,
read as Arrow record batches (``sources``). The supervisor materialises a channel with
it before the script starts (``materialise``); ``naiad.runtime.stream`` reads one from
inside the job. Importing this package imports no pyarrow: only its modules do."""

STREAM_FILE = "naiad-channel.json"  # a streamed channel's directory holds this alone
DATA_TAG = "naiad.data."  # a run's tag per table channel: what it held (see materialise)
