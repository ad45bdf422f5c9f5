# omnihub. By default embedded mode: one process, a SQLite file in /data. The same image
# runs every role of the scaled mode (omnihub migrate | web | worker; see docker-compose.yml).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OMNIHUB_DATABASE_URL=sqlite:////data/omnihub.sqlite3

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY connectors ./connectors
COPY crm_core ./crm_core
COPY routing ./routing
COPY webhooks ./webhooks
# The README's ./dev run install, with the drivers of the scaled mode (PostgreSQL, Redis).
# DL3013 takes the local project with extras for a package to pin; it is this source tree.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[postgres,redis]" \
    && useradd --system --uid 10001 --create-home --home-dir /home/omnihub omnihub \
    && mkdir /data \
    && chown 10001 /data

USER 10001
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["omnihub", "run", "--host", "0.0.0.0", "--port", "8080"]
