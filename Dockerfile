# namegen service image: CPU-only torch, the service and the shipped models, nothing else.
# The base is pinned by digest: python:3.11.10-slim-bookworm as Docker Hub published it (a digest
# names one exact image; a tag moves). Offline, BASE_IMAGE=localhost/namegen-base:bookworm from
# deploy/container/offline-base-image (docs/deployment.md).
#   docker build -t namegen .
#   docker run -p 8000:8000 namegen
ARG BASE_IMAGE=python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

FROM ${BASE_IMAGE} AS build
# PyTorch's CPU wheel index (torch==2.13.0+cpu is only there); empty: none
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# a folder of wheels to install from too (for example torch's CPU wheel mounted into the build)
ARG PIP_FIND_LINKS=
# optional extras of the package, e.g. EXTRAS=ray for the image of deploy/ray/rayservice.yaml (the
# extras' own dependencies are resolved by pip, not taken from the lock)
ARG EXTRAS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/image.lock ./requirements/
COPY app ./app
COPY checkpoint_format ./checkpoint_format
# the response bodies are the Python client's (namegen.schemas), shared with the service
COPY clients/python/namegen ./clients/python/namegen
# every dependency from the lock, each checked against its hashes; then the service itself, with
# nothing more fetched (no build isolation: the lock's setuptools builds it)
RUN set -eu; set --; \
    if [ -n "${PIP_FIND_LINKS}" ]; then set -- "$@" --find-links "${PIP_FIND_LINKS}"; fi; \
    if [ -n "${TORCH_INDEX_URL}" ]; then set -- "$@" --extra-index-url "${TORCH_INDEX_URL}"; fi; \
    /opt/venv/bin/pip install "$@" --require-hashes --no-deps -r requirements/image.lock && \
    /opt/venv/bin/pip install --no-deps --no-build-isolation . && \
    if [ -n "${EXTRAS}" ]; then /opt/venv/bin/pip install "$@" ".[${EXTRAS}]"; fi && \
    /opt/venv/bin/pip check && \
    /opt/venv/bin/python -c "import torch; assert torch.version.cuda is None, 'not a CPU build'" && \
    # what serving never uses: torch's C++ headers and test files (about 150 MB), pip
    site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" && \
    rm -rf "$site/torch/include" "$site/torch/test" && \
    /opt/venv/bin/pip uninstall -y pip && \
    find /opt/venv -name __pycache__ -type d -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONWARNINGS="ignore:Failed to initialize NumPy" \
    NAMEGEN_MODELS_DIR=/app/models \
    NAMEGEN_HOST=0.0.0.0
RUN useradd --no-log-init --uid 10001 --home-dir /app --shell /usr/sbin/nologin namegen
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root models/*.pt models/SHA256SUMS ./models/
# every byte of every checkpoint checked, and the batch loop compiled over each, before the image exists
RUN namegen-verify /app/models
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('NAMEGEN_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status == 200 else 1)"]
# uvicorn with a deadline for request headers (app/http/server.py); NAMEGEN_WORKERS, NAMEGEN_PORT, ...
CMD ["namegen", "serve"]
