"""No test stops or restarts a server the whole session shares.

Tests that need a broker outage start their own (`private_nats`); stopping the
session's would fail whatever else runs against it at that moment.
"""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SESSION_SERVERS = {"postgres", "nats_server", "stack"}
DISRUPTIONS = {"stop", "start", "kill", "remove_data"}


def disruptions(source: str) -> list[tuple[int, str]]:
    """(line, call) for every stop/start on a session server a function receives as a fixture."""
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        fixtures = {arg.arg for arg in function.args.args} & SESSION_SERVERS
        for node in ast.walk(function):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in DISRUPTIONS:
                continue
            root = node.func.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in fixtures:
                found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_check_finds_a_restart_of_a_session_server() -> None:
    source = (
        "async def test_x(nats_server, stack):\n"
        "    nats_server.stop()\n"
        "    stack.postgres.start()\n"
        "def test_own(tmp_path):\n"
        "    stack = Stack(tmp_path)\n"
        "    stack.stop()\n"
    )
    assert disruptions(source) == [(2, "nats_server.stop()"), (3, "stack.postgres.start()")]


def test_no_test_stops_or_restarts_a_session_server() -> None:
    found = [
        f"{path.relative_to(TESTS.parent)}:{line}: {call}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, call in disruptions(path.read_text())
    ]
    assert found == []
