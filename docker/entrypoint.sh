#!/bin/sh
# The image's entry point: the command picks the role.
#   web        gunicorn serving the API and the dashboard on $PORT (default 8000)
#   worker     an RQ worker on every queue (run as many as you like)
#   scheduler  keeps the periodic jobs scheduled (one is enough; a second does no harm)
#   migrate    applies the database migrations, then exits
#   healthcheck  what the image's HEALTHCHECK runs
# Anything else is run as a command, e.g. `flask --app wsgi retention --dry-run`.
# Each role execs one foreground process, so `docker stop` reaches it directly.
set -eu

ROLE_FILE="${TMPDIR:-/tmp}/api-analytics-role"
role="${1:-web}"
if [ "$#" -gt 0 ]; then shift; fi

remember_role() {
    echo "$1" > "$ROLE_FILE"
}

case "$role" in
    web)
        remember_role web
        exec python -m gunicorn wsgi:app \
            --config python:server.runtime.gunicorn_config \
            --bind "${HOST:-0.0.0.0}:${PORT:-8000}" \
            --workers "${WEB_CONCURRENCY:-3}" \
            --threads "${WEB_THREADS:-4}" \
            "$@"
        ;;
    worker)
        remember_role worker
        exec python -m worker "$@"
        ;;
    scheduler)
        remember_role scheduler
        exec python -m worker scheduler "$@"
        ;;
    migrate)
        remember_role migrate
        exec flask --app wsgi db upgrade "$@"
        ;;
    healthcheck)
        case "$(cat "$ROLE_FILE" 2>/dev/null || echo web)" in
            web)
                exec python -c 'import os, sys, urllib.request
url = "http://127.0.0.1:%s/api/health" % os.environ.get("PORT", "8000")
try:
    urllib.request.urlopen(url, timeout=4)
except Exception as exc:
    sys.exit("unhealthy: %s" % exc)'
                ;;
            worker | scheduler)
                exec python -c 'import os, redis
redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=4).ping()'
                ;;
            *)
                exit 0
                ;;
        esac
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
