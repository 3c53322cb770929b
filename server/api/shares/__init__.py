"""Share links: read-only, revocable, optionally expiring links to a key's dashboard."""
