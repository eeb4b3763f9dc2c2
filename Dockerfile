# plx API server. Build: docker build -t plx .   Run: docker run -p 8000:8000 plx

# Build the dashboard (ui/) into app/ui_dist, which the wheel carries.
FROM node:20-slim AS ui
WORKDIR /src/ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui ./
RUN npm run build

# Build the wheel: it carries the package, its data files, the built dashboard and the alembic
# revisions, so the final image installs only the wheel and does not depend on its working
# directory.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml alembic.ini README.md ./
COPY app ./app
COPY migrations ./migrations
COPY --from=ui /src/app/ui_dist ./app/ui_dist
RUN pip install --no-cache-dir --disable-pip-version-check build \
    && python -m build --wheel --outdir /dist

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

COPY --from=wheel /dist/*.whl /tmp/
RUN pip install /tmp/*.whl \
    && rm /tmp/*.whl \
    && mkdir -p /data \
    && chown plx:plx /data \
    && chmod 0700 /data
WORKDIR /srv/plx

USER plx
VOLUME ["/data"]
EXPOSE 8000

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["plx", "server", "--host", "0.0.0.0"]
