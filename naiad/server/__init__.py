"""The HTTP server: REST API under /api/v1, console at /.

Started by name: ``naiad.server.app:create_app``.
"""
