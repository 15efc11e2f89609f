"""Throughput and latency figures for the whole stack: `make bench` (`python -m bench`).

Each run starts its own stack in a temporary directory, plus a probe host (the
User service with bench-only baseline RPCs, `bench/probe_host.py`), and stops
them at the end. Real RPCs are reported as ratios to baselines measured in the
same run. Timings never fail a run; a request that errors does.
"""
