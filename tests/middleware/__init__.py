"""Tests of the client middleware (`middleware/`, import `api_analytics`) in every framework."""
