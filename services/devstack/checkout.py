"""Paths in the source checkout the stack runs from."""

from pathlib import Path

CHECKOUT_DIR = Path(__file__).resolve().parents[2]
# Every contract plus google.rpc, built by `make gen`; Envoy transcodes with it.
DESCRIPTOR_SET = CHECKOUT_DIR / "gen" / "warmhouse.binpb"
DEFAULT_DATA_DIR = CHECKOUT_DIR / ".warmhouse"
