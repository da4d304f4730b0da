# syntax=docker/dockerfile:1.7
#
# The leaderboard site: FastAPI + SQLAlchemy + Alembic on a slim Python, with the CPU build of torch
# (the site itself never trains; `speedrun demo` and the cpu-smoke track do, on CPU).
#
# Build from the repository root:
#   docker build -f docker/service.Dockerfile -t speedrun-site .
# Run (SQLite in the volume; give SPEEDRUN_DATABASE_URL for PostgreSQL, see docker/compose.yaml):
#   docker run -p 8000:8000 -v speedrun-site:/var/lib/speedrun speedrun-site
#
# Migrations run on start (`speedrun serve`, SPEEDRUN_MIGRATE_ON_START=true). Configuration is by
# environment only: SPEEDRUN_DATABASE_URL, SPEEDRUN_BASE_URL, SPEEDRUN_SECRET_KEY, ... (leaderboard/settings.py).

# Python 3.11 on Debian bookworm, pinned by version and by the digest of its multi-arch index.
# Refresh both together: docker buildx imagetools inspect python:3.11.14-slim-bookworm
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

# torch is pinned to the version the project is tested with, from the CPU-only index: the default
# PyPI wheel of torch is the CUDA build and drags several GB of nvidia-* wheels into the image.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Everything is installed under the prefix /install, copied to /usr/local of the runtime stage: the
# interpreter's own site-packages, so that the virtual environments `speedrun verify` makes for forks
# (`venv --system-site-packages`) see torch and the rest without downloading them again. torch alone
# (no deps): its dependencies come pinned from the lock below.
RUN pip install --prefix=/install --no-deps --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

WORKDIR /src
COPY requirements ./requirements
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY speedrun ./speedrun
COPY trainer ./trainer
COPY submissions ./submissions
COPY leaderboard ./leaderboard
COPY web ./web

# The locked dependencies (requirements/postgres.txt pins torch==X+cpu, which the CPU build above
# satisfies, so no CUDA wheel comes from PyPI), then the project, built by the pinned build tools.
RUN pip install -r requirements/build-tools.txt \
    && export PYTHONPATH="$(echo /install/lib/python3*/site-packages)" \
    && pip install --prefix=/install -r requirements/postgres.txt \
    && pip install --prefix=/install --no-deps --no-build-isolation . \
    && python -c "import torch; assert torch.version.cuda is None, 'the site image must carry the CPU build of torch'"

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS site

LABEL org.opencontainers.image.title="speedrun-site" \
      org.opencontainers.image.description="speedrun leaderboard site (FastAPI, PostgreSQL or SQLite)"

# A fixed non-root uid/gid so that volumes and `runAsNonRoot` policies see the same owner everywhere.
RUN groupadd --system --gid 10001 speedrun \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/speedrun --shell /usr/sbin/nologin speedrun \
    && mkdir -p /var/lib/speedrun/artifacts \
    && chown -R 10001:10001 /var/lib/speedrun

COPY --from=build /install /usr/local
# A CPU worker of this image (`speedrun worker --tracks cpu-smoke`) seeds each fork's venv with the
# pinned build tools (submissions/forks.py); the installed package has no requirements/ beside it.
COPY requirements/build-tools.txt /opt/requirements/build-tools.txt
RUN pip check && speedrun --help > /dev/null

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SPEEDRUN_HOME=/var/lib/speedrun \
    SPEEDRUN_ARTIFACTS_DIR=/var/lib/speedrun/artifacts \
    SPEEDRUN_MIGRATE_ON_START=true \
    SPEEDRUN_BUILD_TOOLS=/opt/requirements/build-tools.txt

# SQLite database file, artifacts (logs, run results by content digest) and the generated secret key
# live here when no external database/secret is given; mount a volume to keep them.
VOLUME ["/var/lib/speedrun"]
WORKDIR /var/lib/speedrun
USER 10001:10001

EXPOSE 8000

# The slim image has no curl: the health probe is a few lines of the Python that is already there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4)"]

ENTRYPOINT ["speedrun"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
