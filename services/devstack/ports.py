"""TCP ports on the loopback interface."""

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port nobody listens on right now, chosen by the kernel.

    Another process could take it before our child binds it; that window is
    short and a collision fails loudly at start-up, which beats fixed ports that
    collide whenever two stacks (or two test runs) share the machine.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def accepts_connections(port: int) -> bool:
    """Whether something on 127.0.0.1:port completes a TCP handshake."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False
