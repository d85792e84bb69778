# Every target creates or reuses .venv; a fresh machine needs only Python 3.11, pip and make.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: quickstart test lint bench bench-tracking bench-training bench-serving bench-sagemaker bench-onnx bench-quantization bench-cluster bench-scheduler bench-tuning bench-notebooks bench-batching bench-elastic bench-soak server clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,lightning,notebooks,oidc,onnx,ray,tensorflow,transformers,tune]'
	@touch $(STAMP)

$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $(VENV)/.bench

quickstart: $(STAMP)  ## the main job: the end-to-end tour on the embedded default
	$(PY) -m naiad.quickstart

test: $(STAMP)  ## the whole suite (PostgreSQL tests run when NAIAD_TEST_POSTGRES_URL is set)
	$(PY) -m ruff check naiad tests bench examples
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	@[ -d tests/fixtures/oidc/node_modules ] || ! command -v npm >/dev/null || npm ci --prefix tests/fixtures/oidc --no-audit --no-fund --loglevel=error
	$(PY) -m pytest -n 2 --dist loadfile -m "not faults"
	$(PY) -m pytest -m faults  # alone: one of its faults restarts the shared PostgreSQL

lint: $(STAMP)  ## style, types (mypy) and the layer contracts (import-linter, pyproject.toml)
	$(PY) -m ruff check naiad tests bench examples
	$(PY) -m ruff format --check naiad tests bench examples
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

# Benchmarks byte-compile Naiad first, as installing a release would (an editable install
# leaves that to the first import, which PYTHONDONTWRITEBYTECODE turns into every import).
bench-tracking: $(VENV)/.bench  ## tracking benchmark against MLflow on this machine
	$(PY) -m compileall -q naiad
	$(PY) bench/tracking.py

bench-training: $(STAMP)  ## the digits CNN bare vs as a Naiad job, job latencies, DDP, Lightning, Keras
	$(PY) -m compileall -q naiad
	$(PY) bench/training.py

bench-serving: $(VENV)/.bench  ## the digits CNN served: Naiad's front door and replica vs LitServe, MLflow
	$(PY) -m compileall -q naiad
	$(PY) bench/serving.py

bench-sagemaker: $(STAMP)  ## the SageMaker-compatible API through boto3 vs Naiad's own SDK, live
	$(PY) -m compileall -q naiad
	$(PY) bench/sagemaker.py

bench-onnx: $(STAMP)  ## torch vs ONNX Runtime replicas through the front door, 1 and 64 rows
	$(PY) -m compileall -q naiad
	$(PY) bench/onnx.py

bench-quantization: $(STAMP)  ## float32 vs dynamic, static and QAT int8 copies of the digits and tabular examples, served
	$(PY) -m compileall -q naiad
	$(PY) bench/quantization.py

bench-cluster: $(VENV)/.bench  ## a 2-node DDP job on a local Ray cluster: Naiad's Ray executor vs Ray Train
	$(PY) -m compileall -q naiad
	$(PY) bench/cluster.py

bench-scheduler: $(STAMP)  ## the real scheduler and store placing 5,000 jobs on a simulated 200 x 8-GPU cluster
	$(PY) -m compileall -q naiad
	$(PY) bench/scheduler.py

bench-tuning: $(STAMP)  ## tuning jobs on a live server: trials per minute, the gap between trials, vs Optuna in-process
	$(PY) -m compileall -q naiad
	$(PY) bench/tuning.py

bench-notebooks: $(STAMP)  ## a notebook's cold start to its JupyterLab page through the proxy, and the proxy's WebSocket and HTTP cost, vs JupyterLab direct
	$(PY) -m compileall -q naiad
	$(PY) bench/notebooks.py

bench-batching: $(STAMP)  ## adaptive batch sizes vs the fixed batch on the digits and tabular examples; the finder vs what fits
	$(PY) -m compileall -q naiad
	$(PY) bench/batching.py --json bench/results/batching.json

bench-elastic: $(STAMP)  ## an elastic job vs a fixed one, and the cost of a lost host and its return, on a live server
	$(PY) -m compileall -q naiad
	$(PY) bench/elastic.py --json bench/results/elastic.json

bench-soak: $(STAMP)  ## an hour of mixed traffic with the server and a replica SIGKILLed on a schedule: nothing lost, RSS and open files flat
	$(PY) -m compileall -q naiad
	$(PY) bench/soak.py --json bench/results/soak.json

bench: bench-tracking bench-training bench-serving bench-sagemaker bench-onnx bench-quantization bench-cluster bench-scheduler bench-tuning bench-notebooks bench-batching

server: $(STAMP)
	$(VENV)/bin/naiad server

clean:
	rm -rf $(VENV) build *.egg-info
