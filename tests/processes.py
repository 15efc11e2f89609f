"""What /proc says about processes, for tests that prove nothing is left running."""

from pathlib import Path


def descendants(pid: int) -> set[int]:
    """Every living process below `pid`: children, their children, and so on."""
    parents: dict[int, int] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat_file.read_text()
        except OSError:
            continue
        # The command name may hold spaces or parentheses; fields resume after the last ")".
        parents[int(stat_file.parent.name)] = int(text[text.rindex(")") + 2 :].split()[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = {child for child, parent in parents.items() if parent == current}
        found |= children
        frontier.extend(children)
    return found


def is_alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # A zombie has exited; only its parent has yet to collect the status.
    return text[text.rindex(")") + 2] != "Z"
