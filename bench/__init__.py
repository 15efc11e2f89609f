"""Throughput and latency figures for the whole stack: `make bench` (`python -m bench`).

Each run starts its own stack in a temporary directory and stops it at the end.
Timings never fail a run; a request that errors does.
"""
