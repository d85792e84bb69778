"""The Python SDK: a Client over HTTP and the non-blocking metric logging pipeline.

Importing it never loads the server side (SQLAlchemy, FastAPI).
"""
