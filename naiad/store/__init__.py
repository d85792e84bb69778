"""Metadata (SQLAlchemy) and artifacts (by URI scheme). Only the server side imports this."""
