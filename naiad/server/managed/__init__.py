"""Processes the server starts and keeps on this machine (endpoint replicas, notebook
servers): ``process`` is the core they share, one module per kind uses it."""
