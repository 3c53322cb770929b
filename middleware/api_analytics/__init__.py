"""Client middleware that logs API requests to a self-hosted API Analytics server."""

__version__ = "0.1.0"
