"""Freeing space on the server: what `naiad gc` asks for and what it reports."""

from pydantic import BaseModel, Field


class GcRequest(BaseModel):
    older_than_days: float | None = Field(
        default=None,
        ge=0,
        description="Clear finished jobs' work directories older than this; "
        "default: the server's NAIAD_JOB_RETENTION_DAYS.",
    )
    vacuum: bool = Field(
        default=False, description="Also rewrite the database without its free pages (VACUUM)."
    )


class GcResult(BaseModel):
    freed_bytes: int  # the sum of the parts below
    older_than_days: float
    work_dirs: int  # work directories cleared (finished jobs') or removed (deleted jobs')
    work_dir_bytes: int
    orphan_bytes: int  # artifacts left by runs and jobs deleted earlier
    spool_files: int  # metric batches the server already has, or whose run is gone
    spool_bytes: int
    spool_waiting: int  # batches still waiting for `naiad runs sync`
    wal_bytes: int  # the database's write-ahead log, moved into the database and cut
    vacuum_bytes: int | None = None  # None when VACUUM was not asked for
    problems: list[str] = Field(default_factory=list)  # what could not be done, and why
