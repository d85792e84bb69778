"""Naiad: a self-hosted deep-learning platform.

``import naiad`` stays light: the SDK is loaded on first use, and the server side
(SQLAlchemy, FastAPI) never is.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from naiad.sdk.client import Client
    from naiad.sdk.run import ActiveRun, active_run, start_run

__all__ = ["ActiveRun", "Client", "__version__", "active_run", "start_run"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from naiad.sdk.client import Client

        return Client
    if name in ("start_run", "active_run", "ActiveRun"):
        from naiad.sdk import run

        return getattr(run, name)
    if name == "keras":  # naiad.keras.Callback() without importing naiad.keras first
        import importlib

        return importlib.import_module("naiad.keras")
    raise AttributeError(f"module 'naiad' has no attribute {name!r}")
