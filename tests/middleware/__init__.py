"""Tests of the FastAPI client middleware (`middleware/`, import `api_analytics`)."""
