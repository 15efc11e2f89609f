"""`python -m services.payment_sandbox`: the payment provider's sandbox as an HTTP server.

    python -m services.payment_sandbox --port 8081 --api-key-file key \\
        --webhook-url http://127.0.0.1:8080/webhooks/payments \\
        --webhook-secret-file webhook-secret [--hang-seconds 30] [--transfer-seconds 5]

Prints one line once listening; SIGTERM or Ctrl-C stops it (deliveries not yet
made are abandoned). Exits 2 on bad arguments.
"""

import argparse
import logging
import math
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from services.payment_sandbox.sandbox import Sandbox
from services.payment_sandbox.server import SandboxServer
from services.payment_sandbox.webhooks import Webhooks

DEFAULT_HOST = "127.0.0.1"
MIN_WEBHOOK_SECRET_BYTES = 32
MAX_SECRET_FILE_BYTES = 4096
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_POLL_SECONDS = 0.1


def port_number(text: str) -> int:
    if not (text.isdigit() and 0 <= int(text) < 65536):
        raise argparse.ArgumentTypeError("must be a port from 0 (any free one) to 65535")
    return int(text)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def webhook_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError("must be an http:// or https:// URL")
    return text


def read_secret(path: Path, least_bytes: int) -> str:
    """The file's text without surrounding whitespace; ValueError (or OSError) if unfit."""
    if path.stat().st_size > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"larger than {MAX_SECRET_FILE_BYTES} bytes")
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if len(secret.encode()) < least_bytes:
        raise ValueError(f"must hold at least {least_bytes} bytes")
    return secret


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.payment_sandbox",
        description="A card processor's sandbox: charges, bank transfers, signed webhooks.",
    )
    parser.add_argument("--port", required=True, type=port_number, help="0: any free port")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--api-key-file", required=True, type=Path, metavar="FILE")
    parser.add_argument("--webhook-url", required=True, type=webhook_url, metavar="URL")
    parser.add_argument("--webhook-secret-file", required=True, type=Path, metavar="FILE")
    parser.add_argument(
        "--hang-seconds",
        type=positive_seconds,
        default=30.0,
        help="how long a tok_hang charge holds its answer (default 30)",
    )
    parser.add_argument(
        "--transfer-seconds",
        type=positive_seconds,
        help="transfers arrive on their own after this long (default: only when told to)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments with both secrets read; exits 2 with a message on anything wrong."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.api_key = read_secret(args.api_key_file, least_bytes=1)
    except (OSError, ValueError) as error:
        parser.error(f"--api-key-file: {error}")
    try:
        args.webhook_secret = read_secret(args.webhook_secret_file, MIN_WEBHOOK_SECRET_BYTES)
    except (OSError, ValueError) as error:
        parser.error(f"--webhook-secret-file: {error}")
    return args


def build_server(args: argparse.Namespace) -> SandboxServer:
    webhooks = Webhooks(args.webhook_url, args.webhook_secret.encode())
    sandbox = Sandbox(webhooks, args.hang_seconds, args.transfer_seconds)
    return SandboxServer((args.host, args.port), sandbox, args.api_key)


def run(args: argparse.Namespace) -> int:
    server = build_server(args)
    # A plain list: a signal handler that took a lock could deadlock with the
    # main thread it interrupted while that thread held the same lock.
    stop_signals: list[int] = []
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda received, _frame: stop_signals.append(received))
    # serve_forever in a thread: shutdown() blocks until it returns, so it
    # cannot be called from the thread that runs it.
    serving = threading.Thread(
        target=server.serve_forever, args=(STOP_POLL_SECONDS,), name="http", daemon=True
    )
    server.sandbox.start()
    serving.start()
    print(f"payment sandbox listening on http://{args.host}:{server.port}", flush=True)
    try:
        while not stop_signals:
            time.sleep(STOP_POLL_SECONDS)
    finally:
        server.shutdown()
        server.sandbox.stop()
        server.server_close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    return run(args)
