"""The ``torchkiln`` command line. Heavy imports stay inside commands so each starts lean."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from torchkiln.service.cli import (
    dataset_commands,
    job_actions,
    job_commands,
    predict_command,
    sweep_commands,
)
from torchkiln.service.cli.http import DEFAULT_URL, GlobalApiKey, GlobalUrl, Remote
from torchkiln.service.cli.port_check import port_in_use

if TYPE_CHECKING:
    from torchkiln.service.store.settings import Settings

app = typer.Typer(help="torchkiln: train and serve classic PyTorch models.", no_args_is_help=True)
KEEP_ALIVE_S = 5  # uvicorn's default, stated: it is also the request-head deadline
PORT_BUSY = 4  # exit status of ``serve`` when its port is taken


@app.callback()
def remote(ctx: typer.Context, url: GlobalUrl = DEFAULT_URL, api_key: GlobalApiKey = None) -> None:
    """torchkiln: train and serve classic PyTorch models. ``--url``/``--api-key`` here (or
    after a client sub-command) say which server the client commands talk to."""
    ctx.obj = Remote(url, api_key)


def migrated_settings() -> Settings:
    """The environment's settings, with logging set up and the database at the newest
    migration: what ``serve`` and ``worker`` both do before starting anything."""
    from torchkiln.service.store.db import make_engine, upgrade_database
    from torchkiln.service.store.log_records import configure_logging
    from torchkiln.service.store.settings import Settings

    settings = Settings()
    configure_logging(settings.log_format)
    engine = make_engine(settings)
    upgrade_database(engine)
    engine.dispose()
    return settings


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int | None, typer.Option(help="Training worker processes (0: none; default per GPU).")
    ] = None,
    processes: Annotated[int, typer.Option(min=1, help="HTTP server processes.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request (costs throughput).")] = False,
) -> None:
    """Serve the API, with a training worker pool beside it; applies migrations first."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from torchkiln.service.store.log_records import logging_config
    from torchkiln.workers.pool import WorkerPool
    from torchkiln.workers.shutdown import ShutdownSignals

    busy = port_in_use(host, port)
    if busy is not None:
        typer.echo(f"torchkiln: cannot listen on {host}:{port}: {busy.strerror or busy}", err=True)
        typer.echo("  another server may hold it: stop that one or pass --port", err=True)
        raise typer.Exit(PORT_BUSY)
    settings = migrated_settings()
    size = workers if workers is not None else settings.workers
    pool = WorkerPool(settings, size) if size != 0 else None
    signals = ShutdownSignals(pool)
    # uvicorn swaps in its own handlers while it serves, then restores these and re-raises
    # what it caught: without ours the default SIGTERM action would end this process before
    # the pool could hand its jobs back.
    signals.install()
    if pool is not None:
        pool.start()
    metrics_dir = share_prometheus_dir(processes)
    try:
        # A factory, so each HTTP process builds its own app (engine, model cache) from the
        # same environment; uvicorn handles the first Ctrl-C/SIGTERM and returns here.
        uvicorn.run(
            "torchkiln.service.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=processes,
            log_level="info",
            access_log=access_log,
            # By import path, so each HTTP process loads it: a request head must arrive
            # within the keep-alive timeout (service/cli/header_timeout.py).
            http="torchkiln.service.cli.header_timeout:HeaderTimeoutProtocol",
            timeout_keep_alive=KEEP_ALIVE_S,
            # JSON: uvicorn's own lines too; text: uvicorn's usual format.
            log_config=logging_config("json") if settings.log_format == "json" else LOGGING_CONFIG,
        )
    finally:
        # With several HTTP processes uvicorn's supervisor keeps its handlers: take them back
        # so a signal during the pool's warm stop turns it cold.
        signals.install()
        if pool is not None:
            pool.stop()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def share_prometheus_dir(processes: int) -> Path | None:
    """With several HTTP processes a scrape reaches one of them: prometheus_client's
    multiprocess mode (set before any process imports it) lets each answer for all."""
    if processes == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    path = Path(tempfile.mkdtemp(prefix="torchkiln-prometheus-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


@app.command()
def worker(
    workers: Annotated[int | None, typer.Option(help="Worker processes; default per GPU.")] = None,
) -> None:
    """Run a worker pool alone against TORCHKILN_DATABASE_URL (for other hosts)."""
    from torchkiln.workers.pool import WorkerPool
    from torchkiln.workers.shutdown import ShutdownSignals

    settings = migrated_settings()
    pool = WorkerPool(settings, workers)
    signals = ShutdownSignals(pool)
    signals.install()
    pool.start()
    signals.requested.wait()
    pool.stop()


for command in (
    job_commands.submit,
    job_commands.watch,
    job_commands.jobs,
    job_actions.show,
    job_actions.label,
    job_actions.logs,
    job_actions.cancel,
    job_actions.delete,
    job_actions.promote,
    job_actions.export,
    job_commands.models,
):
    app.command()(command)
app.add_typer(sweep_commands.app, name="sweep")
app.add_typer(dataset_commands.app, name="datasets")
# ``predict mnist a.png`` and ``predict linear --x 1 2``: its own options are free-form.
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    predict_command.predict
)
