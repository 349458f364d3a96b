# syntax=docker/dockerfile:1
# driftline services image: one image, one entry point (`driftline`), the service is the command,
# e.g. `docker run driftline:0.1.0 ingest --config /etc/driftline/driftline.toml`.

# --- build stage: turn the source tree into a wheel, so the runtime stage needs no build tools ---
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY driftline/ driftline/
COPY stream/ stream/
COPY consumers/ consumers/
COPY producers/ producers/
COPY schemas/ schemas/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- native stage: ingest's prediction scanner (native/, Rust + PyO3) as an abi3 wheel for CPython >= 3.11;
# ingest runs without it (every prediction on the Python path), just slower ---
FROM rust:1.95-slim-bookworm AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/maturin && /opt/maturin/bin/pip install --no-cache-dir "maturin>=1.7,<2"
WORKDIR /src
COPY native/ native/
RUN /opt/maturin/bin/maturin build --release --manifest-path native/Cargo.toml --out /wheels

# --- runtime stage: the wheel and its dependencies only, run as an unprivileged user ---
FROM python:3.11-slim
LABEL org.opencontainers.image.title="driftline" \
      org.opencontainers.image.description="Kafka-native monitoring for ML models" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    DRIFTLINE_HEALTH_PORT=9464
# the wheels are bind-mounted from the build stage, so they never become a layer of this image
RUN --mount=type=bind,from=build,source=/wheels,target=/tmp/wheels \
    --mount=type=bind,from=native,source=/wheels,target=/tmp/native \
    pip install --no-cache-dir --no-index /tmp/wheels/*.whl /tmp/native/*.whl \
    && groupadd --system --gid 10001 driftline \
    && useradd --system --uid 10001 --gid driftline --home-dir /home/driftline --create-home driftline \
    && mkdir -p /etc/driftline /var/lib/driftline \
    && chown driftline:driftline /var/lib/driftline
WORKDIR /var/lib/driftline
USER 10001:10001
# Every service serves /healthz on its metrics port; set DRIFTLINE_HEALTH_PORT to the service's port
# (ingest 9464, monitor 9465, retrain-worker 9466, ab-analyzer 9467). slim has no curl: use Python.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['DRIFTLINE_HEALTH_PORT'], timeout=4)"
ENTRYPOINT ["driftline"]
CMD ["--help"]
