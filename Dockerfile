FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY service service
COPY workers workers
COPY models models
COPY alembic alembic
RUN pip install --no-cache-dir -e .
ENV TORCHKILN_ARTIFACTS_DIR=/var/lib/torchkiln/artifacts \
    TORCHKILN_DATA_DIR=/var/lib/torchkiln/data
EXPOSE 8000
CMD ["torchkiln", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "0"]
