"""Ingest health: what each key's clients sent and what was refused, and why, counted as
each batch is answered, read back per key to answer "why is there no data?"."""
