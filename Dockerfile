# plx API server. Build: docker build -t plx .   Run: docker run -p 8000:8000 plx
FROM python:3.11-slim

# tini is PID 1: it forwards signals to the server and reaps orphaned run processes, so a run that
# ends while nobody waits for it does not stay a zombie (contract.md 5).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PLX_DATA_DIR=/data

RUN groupadd --system plx && useradd --system --gid plx --home-dir /srv/plx --shell /bin/bash plx

# app/migrate.py finds `migrations/` beside the package, else in the working directory.
WORKDIR /srv/plx
COPY pyproject.toml alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install . \
    && mkdir -p /data \
    && chown -R plx:plx /data /srv/plx

USER plx
VOLUME ["/data"]
EXPOSE 8000

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["plx", "server", "--host", "0.0.0.0"]
