"""The endpoint replica: one process serving one model directory over HTTP.

``python -m naiad.serving.main MODEL_DIR --port P`` loads the model (loader), then
answers ``POST /invocations`` through a dynamic batcher, with ``GET /ping``,
``/metrics`` (Prometheus) and ``/stats`` (JSON for the server's controller).
Nothing here imports the server side: a replica needs torch, numpy and uvicorn only.
"""
