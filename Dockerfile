# omnihub, embedded mode: one process, a SQLite file in /data.
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
# The same install as the README's ./dev run (add extras: .[postgres] for PostgreSQL).
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --create-home --home-dir /home/omnihub omnihub \
    && mkdir /data \
    && chown 10001 /data

USER 10001
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["omnihub", "run", "--host", "0.0.0.0", "--port", "8080"]
