"""Loaded by a notebook's JupyterLab, never by the server: its kernels' WebSocket with
``TCP_NODELAY``.

jupyter_server leaves Nagle's algorithm on for the kernel channels, so the second
message of each reply (the idle status after the result) waits for the browser's delayed
ACK: about 40 ms per cell on Linux, where the kernel itself takes 3 ms
(``bench/notebooks.py``). Each message leaves as it is written here.
"""

from typing import Any

from jupyter_server.services.kernels.connection.channels import (
    ZMQChannelsWebsocketConnection,
)


class NoDelayChannels(ZMQChannelsWebsocketConnection):
    def connect(self) -> Any:
        self.websocket_handler.set_nodelay(True)
        return super().connect()
