"""`python -m services.message_sandbox`: the SMTP sink and the SMS and push gateways.

    python -m services.message_sandbox --smtp-port 2525 --http-port 8082 \\
        --sms-api-key-file sms-key --push-api-key-file push-key [--host 127.0.0.1]

Prints one line once both listen; SIGTERM or Ctrl-C stops it (what it received
is forgotten). Exits 2 on bad arguments.
"""

import argparse
import logging
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from services.message_sandbox.server import GatewayServer
from services.message_sandbox.smtp import SmtpSink
from services.message_sandbox.store import PUSH, SMS, MessageStore
from services.payment_sandbox.cli import (
    DEFAULT_HOST,
    STOP_POLL_SECONDS,
    STOP_SIGNALS,
    port_number,
    read_secret,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.message_sandbox",
        description="An SMTP server and SMS and push gateways that keep what they receive.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--smtp-port", required=True, type=port_number, help="0: any free port")
    parser.add_argument("--http-port", required=True, type=port_number, help="0: any free port")
    parser.add_argument("--sms-api-key-file", required=True, type=Path, metavar="FILE")
    parser.add_argument("--push-api-key-file", required=True, type=Path, metavar="FILE")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments with both keys read; exits 2 with a message on anything wrong."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.api_keys = {}
    for channel, option in ((SMS, "--sms-api-key-file"), (PUSH, "--push-api-key-file")):
        try:
            args.api_keys[channel] = read_secret(getattr(args, f"{channel}_api_key_file"), 1)
        except (OSError, ValueError) as error:
            parser.error(f"{option}: {error}")
    return args


def run(args: argparse.Namespace) -> int:
    store = MessageStore()
    smtp = SmtpSink(store, args.host, args.smtp_port)
    try:
        http = GatewayServer((args.host, args.http_port), store, args.api_keys)
    except BaseException:
        smtp.stop()
        raise
    # A plain list: a signal handler must not take a lock the main thread may hold.
    stop_signals: list[int] = []
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda received, _frame: stop_signals.append(received))
    serving = threading.Thread(
        target=http.serve_forever, args=(STOP_POLL_SECONDS,), name="http", daemon=True
    )
    smtp.start()
    serving.start()
    print(
        f"message sandbox listening on smtp://{args.host}:{smtp.port}"
        f" and http://{args.host}:{http.port}",
        flush=True,
    )
    try:
        while not stop_signals:
            time.sleep(STOP_POLL_SECONDS)
    finally:
        http.shutdown()
        http.server_close()
        smtp.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    return run(args)
