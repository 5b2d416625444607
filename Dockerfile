FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY service service
COPY workers workers
COPY models models
COPY alembic alembic
# A C compiler only for the install: it builds workers/native/mkl_vendor.c (MKL's AVX-512
# kernels on AMD CPUs), then leaves the image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
ENV TORCHKILN_ARTIFACTS_DIR=/var/lib/torchkiln/artifacts \
    TORCHKILN_DATA_DIR=/var/lib/torchkiln/data
EXPOSE 8000
CMD ["torchkiln", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "0"]
