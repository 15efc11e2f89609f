"""The whole stack: every service up, and gone without a trace once stopped."""

from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.devstack.ports import free_port
from services.devstack.stack import Stack
from tests.processes import descendants, is_alive


def test_every_service_answers_grpc_health_directly(stack: Stack) -> None:
    for name in stack.services:
        with grpc.insecure_channel(stack.grpc_address(name)) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name


def test_stopping_a_stack_leaves_no_process_behind(tmp_path: Path) -> None:
    stack = Stack(tmp_path, http_port=free_port())
    stack.start()
    try:
        children = {process.pid for process in stack.processes if process.pid is not None}
        everything = children | {pid for child in children for pid in descendants(child)}
        assert len(children) == len(stack.processes)
        assert all(is_alive(pid) for pid in everything)
    finally:
        stack.stop()
        stack.postgres.remove_data()

    assert [pid for pid in everything if is_alive(pid)] == []
