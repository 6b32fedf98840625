# syntax=docker/dockerfile:1
# The capsnet-serve image: the FastAPI service and the shipped weights, run as a non-root user.
#
#   docker build -t capsnet-serve:gpu .                           # CUDA (default)
#   docker build --build-arg VARIANT=cpu -t capsnet-serve:cpu .   # CPU-only, no CUDA packages
#
# torch is the one dependency the variants get differently: the GPU base image ships it, the CPU
# base installs the CPU wheel. Both use TORCH_VERSION, which must satisfy pyproject.toml's pin
# (tests/deploy checks it). Everything else comes from pyproject.toml through pip.

ARG VARIANT=gpu
ARG TORCH_VERSION=2.13.0
ARG CUDA_VERSION=12.6
ARG PYTHON_VERSION=3.11

# ---- bases: the only place the variants differ ------------------------------------------------
# CUDA 12.6 runs on NVIDIA drivers >= 560 (>= 525 with forward compatibility); pass
# --build-arg CUDA_VERSION=13.0 for Blackwell GPUs.
FROM pytorch/pytorch:${TORCH_VERSION}-cuda${CUDA_VERSION}-cudnn9-runtime AS base-gpu

FROM python:${PYTHON_VERSION}-slim-bookworm AS base-cpu
ARG TORCH_VERSION
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu

# base-gpu or base-cpu: a stage of this file, not an image hadolint could see tagged.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ---- build: the project's wheel; sources and build backend stay in this stage -----------------
FROM base AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY app/ app/
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime ----------------------------------------------------------------------------------
FROM base AS runtime
ARG TORCH_VERSION
# pip resolves the dependencies from the wheel's metadata (pyproject.toml); torch is already
# there at the pinned version, and the check fails the build if pip ever replaced it.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install /wheels/*.whl \
    && python -c "import torch; assert torch.__version__.split('+')[0] == '${TORCH_VERSION}', torch.__version__"

RUN useradd --system --no-log-init --no-create-home --uid 10001 --user-group capsnet

# Root-owned and read-only for the service, whatever mode the files had in the build context
# (safetensors writes 0600); mount another directory here to swap weights.
COPY --chmod=755 weights/ /opt/capsnet/weights/

# Settings (app/settings.py reads CAPSNET_*); override with `docker run -e`.
# HOME and the caches point at /tmp so the root filesystem can be mounted read-only.
ENV CAPSNET_HOST=0.0.0.0 \
    CAPSNET_PORT=8000 \
    CAPSNET_WEIGHTS=/opt/capsnet/weights/capsnet-mnist.safetensors \
    CAPSNET_DEVICE=auto \
    CAPSNET_LOG_LEVEL=info \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache

WORKDIR /opt/capsnet
USER 10001:10001
EXPOSE 8000

# Liveness only (200 as soon as the process serves); readiness is /readyz, used by compose and k8s.
# Python's urllib, so the image needs no curl; it follows CAPSNET_PORT when that is overridden.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CAPSNET_PORT', '8000'), timeout=4)"]

# The README's server command; exec form so SIGTERM reaches it and it drains gracefully.
STOPSIGNAL SIGTERM
CMD ["capsnet-serve"]
