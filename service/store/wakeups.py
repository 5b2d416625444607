"""Telling idle workers that a job became claimable, so they claim it now, not at their next poll.

PostgreSQL: ``NOTIFY torchkiln_jobs`` in the job's own transaction, so it is delivered on
commit (and never for a rolled-back job); workers LISTEN. SQLite: after the commit, a datagram
to each worker's socket in a folder named after the database file; the processes sharing a
SQLite file share a host. Either way a lost wake-up costs one poll interval, nothing more.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlmodel import Session

CHANNEL = "torchkiln_jobs"
_ANNOUNCED = "torchkiln_announced_in"


def announce_work(session: Session) -> None:
    """Wake idle workers once ``session``'s transaction commits; once per transaction."""
    transaction = session.get_transaction()
    if transaction is None or session.info.get(_ANNOUNCED) is transaction:
        return
    session.info[_ANNOUNCED] = transaction
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_notify(CHANNEL, "")))
        return
    directory = socket_dir(bind.url)
    if directory is not None:
        sa.event.listen(session, "after_commit", lambda _: wake_sockets(directory), once=True)


def socket_dir(url: URL) -> Path | None:
    """Where this SQLite database's idle workers listen; None for one in memory.

    In the temp folder, not beside the database: a socket path may hold only ~100 bytes.
    """
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    digest = hashlib.sha256(str(Path(database).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"torchkiln-wake-{os.getuid()}-{digest}"


def wake_sockets(directory: Path) -> None:
    """One datagram to every socket in ``directory``; never blocks, never raises."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for name in names:
            try:
                sender.sendto(b"!", str(directory / name))
            except OSError:
                # Full: that worker has a wake-up waiting already. Refused or gone: it died.
                pass


def listener_conninfo(url: URL) -> str:
    """libpq's form of a SQLAlchemy PostgreSQL URL, for a connection of its own."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
