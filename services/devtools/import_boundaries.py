"""Check which packages under services/ import which, from the source alone.

    python -m services.devtools.import_boundaries services

prints `file:line: X imports Y (rule)` for each import that crosses a boundary
and exits 1 if there is any. The rules, by the importing part of `services`:

- `runtime` imports no other part: every service builds on it, so it knows none.
- a service (`user`, `space`, ...) imports only `runtime`: never another
  service, nor `registry` (which imports them all), `devstack` or `devtools`.
- `devtools` imports only `runtime`.
- `registry` imports `runtime` and the services, never `devstack` or
  `devtools`, which production installs do not contain.
- the sandboxes (`payment_sandbox`, `message_sandbox`: the outside world's
  stand-ins) import only `runtime` and each other; like `devstack` and
  `devtools` they are dev-only, so no service or the registry imports them.
- `devstack` runs the whole platform locally and may import any part.
- `services/__init__.py` imports no part: every import of any part runs it.

Imports of anything outside `services` (gen/, the standard library, third
parties) are not restricted; imports inside functions count too.
"""

import ast
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

RUNTIME = "runtime"
REGISTRY = "registry"
DEVSTACK = "devstack"
DEVTOOLS = "devtools"
SANDBOXES = ("payment_sandbox", "message_sandbox")
DEV_ONLY = (DEVSTACK, DEVTOOLS, *SANDBOXES)


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    importer: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported} ({self.rule})"


def check(root: Path) -> list[Violation]:
    """Every import under `root` (a top-level package such as services/) that breaks a rule."""
    violations = []
    for path in sorted(root.rglob("*.py")):
        importer = _module_name(root, path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, imported in _imports(tree, importer, is_package=path.name == "__init__.py"):
            rule = broken_rule(root.name, importer, imported)
            if rule is not None:
                violations.append(Violation(path, line, importer, imported, rule))
    return violations


def broken_rule(package: str, importer: str, imported: str) -> str | None:
    """The rule `importer` breaks by importing `imported`, both modules of `package`; or None."""
    target = _part(package, imported)
    source = _part(package, importer)
    if target is None or target == source or source == DEVSTACK:
        return None
    if source is None:
        return f"{package}/__init__ imports none of its parts"
    if source == RUNTIME:
        return "runtime imports no other part of services"
    if source == DEVTOOLS:
        return None if target == RUNTIME else "devtools imports only runtime"
    if source in SANDBOXES:
        allowed = (RUNTIME, *SANDBOXES)
        return None if target in allowed else "a sandbox imports only runtime and sandboxes"
    if source == REGISTRY:
        return f"registry never imports {target}, which is dev-only" if target in DEV_ONLY else None
    if target == RUNTIME:
        return None
    if target in DEV_ONLY:
        return f"a service never imports {target}, which is dev-only"
    if target == REGISTRY:
        return "a service never imports the registry, which imports every service"
    return "a service never imports another service"


def _part(package: str, module: str) -> str | None:
    """`user` for services.user.handlers; None for services itself or outside it."""
    names = module.split(".")
    return names[1] if names[0] == package and len(names) > 1 else None


def _module_name(root: Path, path: Path) -> str:
    names = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(names[:-1] if names[-1] == "__init__" else names)


def _imports(tree: ast.AST, importer: str, *, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in `tree`, relative ones resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = importer.split(".") if is_package else importer.split(".")[:-1]
                base = ".".join(filter(None, [*here[: len(here) - node.level + 1], base]))
            for alias in node.names:
                # `from services import user` imports the package services.user.
                top_level = "." not in base and alias.name != "*"
                yield node.lineno, f"{base}.{alias.name}" if top_level else base


def main(roots: Sequence[str]) -> int:
    if not roots:
        print("usage: python -m services.devtools.import_boundaries DIR...", file=sys.stderr)
        return 2
    violations = [violation for root in roots for violation in check(Path(root))]
    for violation in violations:
        print(violation)
    if violations:
        print(f"{len(violations)} import(s) cross a package boundary", file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
