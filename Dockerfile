# syntax=docker/dockerfile:1
# One image for everything eoflows runs: Prefect Kubernetes job pods and workers, Dask Gateway schedulers
# and workers (same Python packages, so tasks run on Dask workers), and the CWL DockerRequirement of the
# exported application packages (`eoflows step ...`).
#
#   docker build -t ghcr.io/eoflows/eoflows:0.1.0 .

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY eoflows ./eoflows
COPY flows ./flows
COPY tasks ./tasks
COPY blocks ./blocks
COPY deployments ./deployments
# wheels only for the dependencies: no compiler needed, none shipped
RUN python -m venv /opt/eoflows \
    && /opt/eoflows/bin/python -m pip install --no-cache-dir --upgrade "pip>=24" \
    && /opt/eoflows/bin/python -m pip install --no-cache-dir --only-binary=:all: --no-binary=eoflows .

FROM python:3.11-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="eoflows" \
      org.opencontainers.image.description="Earth-observation application packages as Prefect flows and CWL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/eoflows/eoflows" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 1000 eoflows && useradd --uid 1000 --gid 1000 --create-home eoflows
COPY --from=build /opt/eoflows /opt/eoflows
ENV PATH=/opt/eoflows/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    MALLOC_ARENA_MAX=2
USER 1000:1000
WORKDIR /home/eoflows
CMD ["eoflows", "--help"]
