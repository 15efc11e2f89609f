"""Generate Python code and Envoy's descriptor set from protos/.

Output: `<out>/warmhouse/<svc>/v1/*_pb2.py`, `*_pb2.pyi`, `*_pb2_grpc.py`,
`*_pb2_grpc.pyi`, and `<out>/warmhouse.binpb` (every contract plus the
google/rpc messages Envoy needs to print error details).
"""

import argparse
import shutil
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ERROR_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def run_protoc(args: list[str]) -> None:
    if protoc.main(["protoc", *args]) != 0:
        sys.exit(f"protoc failed: {' '.join(args)}")


def generate(protos: list[str], protodeps: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    includes = ["-Iprotos", f"-I{protodeps}", f"-I{well_known}"]
    sources = [str(Path(p).relative_to("protos")) for p in protos]
    bin_dir = Path(sys.executable).parent
    plugins = [
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
    ]
    run_protoc(
        [
            *includes,
            *plugins,
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            *sources,
        ]
    )
    run_protoc(
        [
            *includes,
            "--include_imports",
            f"--descriptor_set_out={out / 'warmhouse.binpb'}",
            *sources,
            *ERROR_PROTOS,
        ]
    )
    for package in out.rglob("*"):
        if package.is_dir():
            (package / "__init__.py").touch()
    (out / "warmhouse" / "py.typed").touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--protodeps", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("protos", nargs="+")
    options = parser.parse_args()
    generate(options.protos, options.protodeps, options.out)


if __name__ == "__main__":
    main()
