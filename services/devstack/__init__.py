"""The local stack: Postgres, NATS, Envoy and every service as child processes.

`python -m services.devstack` (`make run`) runs it for people; tests use the same
pieces through the fixtures in `tests/conftest.py` and `tests/e2e/conftest.py`.
"""
