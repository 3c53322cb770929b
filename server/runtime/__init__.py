"""Running the service: `make run`'s supervisor, start-up checks and notes, gunicorn's
settings and access log, child processes."""
