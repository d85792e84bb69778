"""The fault-injection suite: faults a real deployment sees, injected together and under
load, against the real server on PostgreSQL with the S3-compatible test store.

Marked ``faults``: `make test` runs it after the rest, on its own, since one of its faults
restarts the PostgreSQL cluster that the other tests share.
"""

from naiad.testing.s3 import s3_server  # noqa: F401 - a fixture for this folder
