"""Reconcile loops that run inside the server: the job scheduler (more to come)."""
