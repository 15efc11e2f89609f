"""Throwaway secrets for the dev overlay: run once, before `kubectl apply -k k8s/overlays/dev`.

    .venv/bin/python k8s/overlays/dev/make-secrets.py

Writes k8s/overlays/dev/secrets/ (gitignored): a random value per Secret the
manifests read, the JWT signing key (EC P-256) with its JWKS, and the
kustomization that turns them into Secrets. Existing files are kept. It needs
the project's virtualenv (the signing key is made as the User service reads it).
Never for production: there, the operator creates the Secrets (README).
"""

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(CHECKOUT), str(CHECKOUT / "gen")]

from services.devstack.kubernetes import write_dev_secrets  # noqa: E402

if __name__ == "__main__":
    target = Path(__file__).resolve().parent / "secrets"
    write_dev_secrets(target)
    print(f"wrote {target}")
