"""Copy the third-party protos our contracts import into a build folder.

buf's remote dependencies are unreachable from our machines, so google/api and
google/rpc come from the installed googleapis-common-protos package instead.
"""

import shutil
import sys
from pathlib import Path

import google.api.annotations_pb2

THIRD_PARTY = (
    "google/api/annotations.proto",
    "google/api/http.proto",
    "google/api/httpbody.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
)


def copy_protodeps(target: Path) -> None:
    site_root = Path(google.api.annotations_pb2.__file__).parents[2]
    for relative in THIRD_PARTY:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site_root / relative, destination)


if __name__ == "__main__":
    copy_protodeps(Path(sys.argv[1]))
