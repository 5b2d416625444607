"""An idle worker's wait: it returns as soon as a job is queued, or after the poll interval.

The other half of ``service.store.wakeups``: a LISTEN on a connection of its own on
PostgreSQL, a datagram socket on SQLite. Anything that breaks a listener leaves the worker
polling as before (a PostgreSQL listener reconnects), so a wake-up is never needed for
correctness, only for latency.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import time
from pathlib import Path
from typing import Any, Protocol

import psycopg
import sqlalchemy as sa

from torchkiln.service.store.settings import Settings
from torchkiln.service.store.wakeups import CHANNEL, listener_conninfo, socket_dir

logger = logging.getLogger(__name__)
# How often a waiting worker looks at its stop signal, and a lost LISTEN retries.
STOP_CHECK_S = 0.1
RECONNECT_S = 5.0


class WakeListener(Protocol):
    def wait(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s``; True if work may have been queued meanwhile."""
        ...

    def close(self) -> None: ...


class StopSignal(Protocol):
    def is_set(self) -> bool: ...


def open_listener(settings: Settings) -> WakeListener:
    """The listener for ``settings``' database, or plain sleeping if wake-ups are off."""
    if not settings.wake_workers:
        return PollOnly()
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "postgresql":
        return PostgresListener(listener_conninfo(url))
    directory = socket_dir(url)
    if directory is None:
        return PollOnly()
    try:
        return SocketListener(directory)
    except OSError as error:
        logger.warning("no wake-ups at %s (%s); polling only", directory, error)
        return PollOnly()


def wait_for_work(listener: WakeListener, stop: StopSignal, timeout_s: float) -> None:
    """Until a wake-up, ``stop``, or ``timeout_s`` (the poll), whichever comes first."""
    deadline = time.monotonic() + timeout_s
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0 or listener.wait(min(remaining, STOP_CHECK_S)):
            return


class PollOnly:
    def wait(self, timeout_s: float) -> bool:
        time.sleep(timeout_s)
        return False

    def close(self) -> None:
        pass


class SocketListener:
    """A datagram socket named after this process in the database's wake-up folder."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, exist_ok=True)
        if directory.stat().st_uid != os.getuid():
            raise PermissionError(f"{directory} belongs to another user")
        remove_stale_sockets(directory)
        self.path = directory / str(os.getpid())
        self.path.unlink(missing_ok=True)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.socket.bind(str(self.path))
        except OSError:
            self.socket.close()
            raise
        self.socket.setblocking(False)

    def wait(self, timeout_s: float) -> bool:
        readable, _, _ = select.select([self.socket], [], [], timeout_s)
        if not readable:
            return False
        # One claim answers every wake-up that came in while this worker was busy.
        while True:
            try:
                self.socket.recv(16)
            except BlockingIOError:
                return True

    def close(self) -> None:
        self.socket.close()
        self.path.unlink(missing_ok=True)


def remove_stale_sockets(directory: Path) -> None:
    """Sockets of workers that died without closing them: named by pid, the pid is gone."""
    for path in directory.iterdir():
        if path.name.isdigit() and not is_process_alive(int(path.name)):
            path.unlink(missing_ok=True)


def is_process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PostgresListener:
    """LISTEN on a connection of its own; lost, it polls and reconnects every few seconds."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.connection: psycopg.Connection[Any] | None = None
        self.is_down = False
        self.retry_at = 0.0
        self.connect()

    def connect(self) -> bool:
        try:
            connection = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
        except psycopg.Error as error:
            self.fall_back(error)
            return False
        try:
            connection.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as error:
            connection.close()
            self.fall_back(error)
            return False
        if self.is_down:
            logger.info("LISTEN %s is back", CHANNEL)
        self.connection, self.is_down = connection, False
        return True

    def fall_back(self, error: Exception) -> None:
        if not self.is_down:
            logger.warning("no LISTEN %s (%s); polling until it is back", CHANNEL, error)
        self.is_down = True
        self.retry_at = time.monotonic() + RECONNECT_S

    def wait(self, timeout_s: float) -> bool:
        if self.connection is None:
            if time.monotonic() < self.retry_at:
                time.sleep(timeout_s)
                return False
            # Back after a gap in which a notification may have gone unheard: claim once.
            return self.connect()
        try:
            # Each generator run to its end: a suspended one holds the connection's lock.
            if not list(self.connection.notifies(timeout=timeout_s, stop_after=1)):
                return False
            list(self.connection.notifies(timeout=0))
        except psycopg.Error as error:
            self.close()
            self.fall_back(error)
        return True

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
