"""Keys: API keys (made, hashed, rotated, described, deleted), idle keys, and read-only
share links to a key's dashboard."""
