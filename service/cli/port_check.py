"""A busy port, reported before ``serve`` migrates the database or starts workers.

uvicorn finds out only once it binds, after start-up work and with a worker pool already
running; a trial bind with the same options tells at once.
"""

from __future__ import annotations

import socket


def port_in_use(host: str, port: int) -> OSError | None:
    """The error binding ``host:port`` gives now, or None when it is free."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as error:
        return error
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # As uvicorn binds: a port whose old connections linger in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                return error
    return None
