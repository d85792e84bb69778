"""Test fixtures shared by Naiad's suites (live server, backends)."""
