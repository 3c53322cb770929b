"""Uptime monitors: the URLs a key has checked, the checks themselves, and uptime."""
