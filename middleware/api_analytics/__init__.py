"""Middleware that logs the requests of any Python web API to a self-hosted API Analytics server."""

__version__ = "0.2.0"
