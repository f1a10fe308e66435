# One image for everything eoflows runs: Prefect Kubernetes job pods and workers, Dask Gateway schedulers
# and workers (same Python packages, so tasks run on Dask workers), and the CWL DockerRequirement of the
# exported application packages (`eoflows step ...`).
#
#   docker build -t ghcr.io/eoflows/eoflows:0.1.0 .      with a registry: python:3.11-slim, wheels from PyPI
#   make image                                            without one: image/build.sh (no pull, no download)
#   make image EXTRA="my-package/ other.whl"              with application packages of one's own
#
# image/build.sh passes BASE (Debian bookworm made locally with debootstrap: its python3 is 3.11 too) and puts
# in image/wheels/ the wheels it downloaded on the host, their pinned requirements.txt and a pip.conf that keeps
# pip off the network. A plain build finds none of them there, and pip uses PyPI.
ARG BASE=python:3.11-slim

# the source, in a stage of its own: one COPY of it into the (large) package stage
FROM ${BASE} AS source
WORKDIR /src
COPY pyproject.toml README.md ./
COPY eoflows ./eoflows
COPY flows ./flows
COPY tasks ./tasks
COPY blocks ./blocks
COPY deployments ./deployments

# the dependencies, in a stage that a change of the source leaves alone
FROM ${BASE} AS dependencies
# image/build.sh's wheelhouse brings a pip.conf: no index, its wheels only (a missing file is no configuration)
ENV PIP_CONFIG_FILE=/wheels/pip.conf \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY image/wheels/ /wheels/
RUN python3 -m venv /opt/eoflows \
    && /opt/eoflows/bin/python -m pip install --upgrade "pip>=24" \
    && if [ -f /wheels/requirements.txt ]; then \
        /opt/eoflows/bin/python -m pip install --only-binary=:all: --requirement /wheels/requirements.txt; \
    fi

# eoflows, beside the venv (--prefix): what the venv has already is not installed again (everything, with a
# wheelhouse; nothing but pip, without one)
FROM dependencies AS package
COPY --from=source /src /src
# wheels only for the dependencies: no compiler needed, none shipped
RUN /opt/eoflows/bin/python -m pip install --only-binary=:all: --no-binary=eoflows --prefix=/opt/package /src

# application packages of one's own (make image EXTRA="..."; image/build.sh): their wheels and what they need
# beyond the wheelhouse, all in image/extra/ (nothing there without EXTRA)
FROM dependencies AS extra
COPY image/extra/ /extra/
RUN mkdir -p /opt/extra \
    && if ls /extra/*.whl >/dev/null 2>&1; then \
        /opt/eoflows/bin/python -m pip install --no-index --no-deps --only-binary=:all: --prefix=/opt/extra /extra/*.whl; \
    fi

FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="eoflows" \
      org.opencontainers.image.description="Earth-observation application packages as Prefect flows and CWL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/eoflows/eoflows" \
      org.opencontainers.image.licenses="Apache-2.0"
# uid 1000; also runs as any uid of group 0 (OpenShift), or any uid at all with a read-only root file system
RUN groupadd --gid 1000 eoflows \
    && useradd --uid 1000 --gid 1000 --create-home eoflows \
    && chgrp 0 /home/eoflows && chmod g=u /home/eoflows
# nothing may write to HOME (unset, unwritable, or the output folder of a CWL step): no byte code (compiled at
# install), no pip cache; a step command's Prefect home is private, under TMPDIR (eoflows/prefect_home.py)
ENV PATH=/opt/eoflows/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    MALLOC_ARENA_MAX=2
USER 1000:1000
WORKDIR /home/eoflows
CMD ["eoflows", "--help"]
# last: each step after a large layer is slow to commit on storage drivers that diff naively (fuse-overlayfs)
COPY --from=dependencies /opt/eoflows /opt/eoflows
COPY --from=package /opt/package /opt/eoflows
COPY --from=extra /opt/extra /opt/eoflows
