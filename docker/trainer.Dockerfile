# syntax=docker/dockerfile:1.7
#
# The GPU trainer and verification worker: CUDA toolkit, a pinned CUDA build of torch, flash-attention 2
# built against exactly that torch, and the project. Entry point: `speedrun worker`.
#
# Build from the repository root (the flash-attn compile takes a while; MAX_JOBS bounds its memory):
#   docker build -f docker/trainer.Dockerfile -t speedrun-trainer .
#   docker build -f docker/trainer.Dockerfile --build-arg MAX_JOBS=16 -t speedrun-trainer .
# With flash-attention 3 (Hopper, sm_90) as well, an optional stage:
#   docker build -f docker/trainer.Dockerfile --target trainer-fa3 -t speedrun-trainer:fa3 .
#
# Every version that changes numerics is pinned here (CUDA, torch, flash-attn): an unpinned nightly is
# a known cause of irreproducible records. `trainer/attention.py` picks, at run time, a kernel-hub FA3
# (`kernels`, from the [gpu] extra; it downloads on first use, so not inside a sealed, offline run),
# then the FA3 / FA2 built here, then FlexAttention, then SDPA. The image keeps its own FA2 (and the
# optional FA3 target) because verification runs have no network to fetch the hub kernel; flash-attn
# is no longer part of the [gpu] extra, so its version is pinned here only.

# CUDA 13.0 toolkit (nvcc for the flash-attn build) + cuDNN on Ubuntu 24.04 (Python 3.12); torch 2.13.0
# on PyPI and on the cu130 index is built against CUDA 13.0. Pin a digest too where your registry policy
# asks for one: docker buildx imagetools inspect nvidia/cuda:13.0.2-cudnn-devel-ubuntu24.04
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-devel-ubuntu24.04

# ---------------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS base

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130

# Packages go into the system interpreter's /usr/local/lib/python3.12/dist-packages, not a virtual
# environment: `speedrun verify` installs a fork into `venv --system-site-packages`, which must see
# torch and flash-attn from here. PEP 668 guards the distribution's Python; this image is its only user.
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PYTHONUNBUFFERED=1

# build-essential: the host compiler of nvcc (flash-attn) and of Triton's launchers (torch.compile)
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       python3 python3-pip python3-venv python3-dev build-essential git ca-certificates bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python

# The locked build tools (pip, setuptools, wheel) build flash-attn and the project; --ignore-installed
# because Ubuntu's own pip/setuptools have no RECORD to uninstall them by.
COPY requirements/build-tools.txt /opt/requirements/build-tools.txt
RUN pip install --ignore-installed -r /opt/requirements/build-tools.txt \
    && pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
    && pip install "packaging>=24" "ninja>=1.11" "psutil>=5.9" "einops>=0.8" \
    && python -c "import torch; assert torch.version.cuda and torch.version.cuda.startswith('13.0'), torch.version.cuda" \
    && pip freeze | grep -i '^torch==' > /opt/torch-constraint.txt

# ---------------------------------------------------------------------------------------------------
# flash-attention 2 (sm_80 and sm_90), compiled here against the torch above. MAX_JOBS bounds the
# parallel nvcc processes (each can take several GB of RAM); NVCC_THREADS the threads inside one.
# FLASH_ATTN_CUDA_ARCHS: 80 = A100, 90 = H100/H200; add 100 for B200 (longer build).
FROM base AS fa2

ARG FLASH_ATTN_VERSION=2.8.3
ARG MAX_JOBS=8
ARG NVCC_THREADS=2
ARG FLASH_ATTN_CUDA_ARCHS="80;90"

RUN MAX_JOBS="${MAX_JOBS}" NVCC_THREADS="${NVCC_THREADS}" FLASH_ATTN_CUDA_ARCHS="${FLASH_ATTN_CUDA_ARCHS}" \
    FLASH_ATTENTION_FORCE_BUILD=TRUE \
    pip wheel --no-build-isolation --no-deps --wheel-dir /wheels/fa2 "flash-attn==${FLASH_ATTN_VERSION}"

# ---------------------------------------------------------------------------------------------------
# flash-attention 3 from its Hopper source (module `flash_attn_interface`), optional: built only for
# the `trainer-fa3` target. Pinned to a release tag; features the trainer never uses are left out to
# cut the compile time (fp16, fp8, paged and appended KV caches, softcap).
FROM base AS fa3

ARG FLASH_ATTN_REPO=https://github.com/Dao-AILab/flash-attention.git
ARG FLASH_ATTN3_REF=v2.8.3
ARG MAX_JOBS=8
ARG NVCC_THREADS=2

RUN git clone --depth 1 --branch "${FLASH_ATTN3_REF}" --recurse-submodules --shallow-submodules \
        "${FLASH_ATTN_REPO}" /tmp/flash-attention \
    && cd /tmp/flash-attention/hopper \
    && MAX_JOBS="${MAX_JOBS}" NVCC_THREADS="${NVCC_THREADS}" \
       FLASH_ATTENTION_DISABLE_FP16=TRUE FLASH_ATTENTION_DISABLE_FP8=TRUE \
       FLASH_ATTENTION_DISABLE_PAGEDKV=TRUE FLASH_ATTENTION_DISABLE_APPENDKV=TRUE \
       FLASH_ATTENTION_DISABLE_SOFTCAP=TRUE \
       pip wheel --no-build-isolation --no-deps --wheel-dir /wheels/fa3 . \
    && rm -rf /tmp/flash-attention

# ---------------------------------------------------------------------------------------------------
# The project on top of torch; no flash-attention yet (the two targets below add theirs).
FROM base AS project

# speedrun-sandbox: the unprivileged uid a worker started as root (`docker run --user 0`) drops every
# sealed step to (submissions/sandbox.py, setpriv from util-linux); the default user 10001 seals in
# a user namespace instead. docs/deploy.md, "Sealed execution", gives the `docker run` options of both.
RUN groupadd --gid 10001 speedrun \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/speedrun --shell /bin/bash speedrun \
    && groupadd --system --gid 10002 speedrun-sandbox \
    && useradd --system --uid 10002 --gid 10002 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin speedrun-sandbox \
    && command -v setpriv && command -v bwrap \
    && mkdir -p /data \
    && chown 10001:10001 /data

WORKDIR /opt/speedrun
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY speedrun ./speedrun
COPY trainer ./trainer
COPY submissions ./submissions
COPY leaderboard ./leaderboard
COPY web ./web

# bubblewrap (installed above) seals every step that runs submitted code (submissions/sandbox.py);
# forks' venvs are seeded from the same pinned build tools. SPEEDRUN_REFERENCE_REPO: a clone of this
# repository (with history) for the review diff of forks, mounted or cloned by the operator.
ENV SPEEDRUN_HOME=/data \
    SPEEDRUN_BUILD_TOOLS=/opt/requirements/build-tools.txt \
    SPEEDRUN_REFERENCE_REPO=/opt/speedrun-reference \
    NCCL_DEBUG=WARN \
    TORCH_NCCL_ASYNC_ERROR_HANDLING=1

# ---------------------------------------------------------------------------------------------------
# FA3 + FA2 (optional target: --target trainer-fa3).
FROM project AS trainer-fa3

COPY --from=fa2 /wheels/fa2 /wheels/fa2
COPY --from=fa3 /wheels/fa3 /wheels/fa3
RUN pip install --no-deps /wheels/fa2/*.whl /wheels/fa3/*.whl \
    && pip install --constraint /opt/torch-constraint.txt ".[gpu,postgres]" \
    && pip check \
    && rm -rf /wheels \
    && pip show flash-attn flash-attn-3 > /dev/null

VOLUME ["/data"]
USER 10001:10001
ENTRYPOINT ["speedrun", "worker"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------------
# FA2 only: the default target (last stage).
FROM project AS trainer

COPY --from=fa2 /wheels/fa2 /wheels/fa2
RUN pip install --no-deps /wheels/fa2/*.whl \
    && pip install --constraint /opt/torch-constraint.txt ".[gpu,postgres]" \
    && pip check \
    && rm -rf /wheels \
    && pip show flash-attn > /dev/null

VOLUME ["/data"]
USER 10001:10001
ENTRYPOINT ["speedrun", "worker"]
CMD ["--help"]
