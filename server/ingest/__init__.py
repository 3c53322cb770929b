"""Ingest: one pipeline of named steps (read, parse, check, enrich, store) for the web and the
staging fallback alike, with receipts, staging and the backlog beside it."""
