# One image for every role; the command picks it: web | worker | scheduler | migrate.
# docker-compose.yml is the production recipe that runs them all.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    APP_ENV=production \
    DATA_DIR=/data \
    PORT=8000

WORKDIR /app

# Dependencies in their own layer: installing the project with empty packages
# pulls them in, then the stub is removed and the real code is copied below.
COPY pyproject.toml README.md ./
# The project itself, with its s3 extra: versions are pinned in pyproject.toml.
# hadolint ignore=DL3013
RUN mkdir -p server worker dash_app \
    && touch server/__init__.py worker/__init__.py dash_app/__init__.py \
    && pip install --no-cache-dir ".[s3]" \
    && pip uninstall --yes api-analytics-server \
    && rm -rf server worker dash_app build ./*.egg-info

COPY wsgi.py ./
COPY server ./server
COPY worker ./worker
COPY dash_app ./dash_app
COPY docker/entrypoint.sh /usr/local/bin/entrypoint

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /data \
    && chown 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["entrypoint", "healthcheck"]

ENTRYPOINT ["entrypoint"]
CMD ["web"]
