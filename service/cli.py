"""The ``torchkiln`` command line. Heavy imports stay inside commands so each starts lean."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

app = typer.Typer(
    help="torchkiln: train and serve the classic PyTorch models.", no_args_is_help=True
)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes in this server (0: none).")
    ] = None,
) -> None:
    """Run the API with a worker pool inside (migrations are applied at start)."""
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = Settings()
    size = workers if workers is not None else settings.workers
    application = create_app(settings, start_pool=size != 0, pool_size=size)
    uvicorn.run(application, host=host, port=port, log_level="info")


@app.command()
def worker(
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: per GPU).")
    ] = None,
) -> None:
    """Run a worker pool alone against TORCHKILN_DATABASE_URL (for other hosts)."""
    from service.db import make_engine, upgrade_database
    from service.settings import Settings
    from workers.pool import WorkerPool

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = Settings()
    engine = make_engine(settings)
    upgrade_database(engine)
    engine.dispose()
    pool = WorkerPool(settings, workers)
    stopping = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    pool.start()
    stopping.wait()
    pool.stop()


if __name__ == "__main__":
    app()
