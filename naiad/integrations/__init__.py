"""Loggers and callbacks for the training libraries people already write scripts with.

Each records into a Naiad run through the SDK's non-blocking pipeline: in a Naiad job,
the job's own run (``$NAIAD_RUN_ID``); elsewhere a new run in the experiment given.

- ``naiad.integrations.lightning.NaiadLogger``: a PyTorch Lightning ``Logger``
  (``pip install 'naiad[lightning]'``);
- ``naiad.integrations.transformers.NaiadCallback``: a Hugging Face ``TrainerCallback``
  (``pip install 'naiad[transformers]'``).

Each module imports its library; this package imports neither.
"""
