"""The server's reverse proxy to processes it manages on this machine.

``forward``: the generic path (every HTTP method, bodies streamed both ways, WebSocket
upgrades), for servers such as JupyterLab. ``inference`` and ``upstream``: the
specialised path of ``/endpoints/NAME/invocations``, kept lean because it is hot.
"""
