"""Write a kustomize overlay that puts the mesh credential's public keys into the sidecars.

    python tools/mesh_jwks.py --jwks jwks.json --overlay k8s/overlays/prod --out ../hivemesh-site/prod
    kubectl apply -k ../hivemesh-site/prod

istio/mesh-credential.yaml ships a placeholder JWKS without keys, so a mesh deployed as committed
rejects every credential. The overlay written to --out includes --overlay and patches the JWKS of
the RequestAuthentications labelled app.kubernetes.io/component=mesh-credential with the keys of
--jwks: the jwks.json of the Secret hivemesh-mesh-keys, so the sidecars and the services verify
against one key set. Write it again after every change of that file (key rotation) and apply.

Refused: a key set with a private key, or with a key that is not an EC P-256 public key (ES256)
with a unique kid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Final

import jwt
import yaml

MESH_ISSUER: Final = "hivemesh"
# The label the RequestAuthentications for the mesh credential carry (istio/mesh-credential.yaml).
MESH_CREDENTIAL_LABEL: Final = "app.kubernetes.io/component=mesh-credential"
HEADER: Final = "# Written by tools/mesh_jwks.py; write it again rather than edit it.\n"


class JwksError(ValueError):
    """The key set cannot go into the mesh."""


def read_jwks(path: Path) -> str:
    """The key set in ``path`` as compact JSON, once it holds only ES256 public keys with kids."""
    try:
        jwks = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise JwksError(f"{path}: not JSON ({error})") from error
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise JwksError(f'{path}: not a JWK Set with keys ({{"keys": [...]}})')
    kids: set[str] = set()
    for index, key in enumerate(jwks["keys"]):
        where = f"{path}: key {index}"
        if not isinstance(key, dict):
            raise JwksError(f"{where}: not a JSON object")
        if "d" in key:
            raise JwksError(f"{where} is a private key: the key set is public, give it public keys only")
        if key.get("kty") != "EC" or key.get("crv") != "P-256":
            raise JwksError(f"{where}: kty {key.get('kty')!r} crv {key.get('crv')!r}, ES256 needs EC P-256")
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid:
            raise JwksError(f"{where}: no kid (the credential's header names its key by kid)")
        if kid in kids:
            raise JwksError(f"{where}: kid {kid!r} appears twice")
        kids.add(kid)
        try:
            jwt.PyJWK(key, algorithm="ES256")
        except jwt.exceptions.PyJWTError as error:
            raise JwksError(f"{where}: {error}") from error
    return json.dumps(jwks, separators=(",", ":"))


def kustomization(overlay: Path, out: Path, jwks: str) -> dict[str, Any]:
    """The overlay: ``overlay`` (referred to relative to ``out``) with ``jwks`` in the mesh's
    RequestAuthentications. The test operation makes the build fail if the first rule of a selected
    object is not the mesh credential's, rather than replace another issuer's keys."""
    patch = [
        {"op": "test", "path": "/spec/jwtRules/0/issuer", "value": MESH_ISSUER},
        {"op": "replace", "path": "/spec/jwtRules/0/jwks", "value": jwks},
    ]
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [Path(os.path.relpath(overlay.resolve(), out.resolve())).as_posix()],
        "patches": [
            {
                "target": {
                    "group": "security.istio.io",
                    "kind": "RequestAuthentication",
                    "labelSelector": MESH_CREDENTIAL_LABEL,
                },
                "patch": json.dumps(patch),
            }
        ],
    }


def write(overlay: Path, out: Path, jwks: str) -> Path:
    """Write ``out/kustomization.yaml``; refuses to replace one this tool did not write."""
    if not (overlay / "kustomization.yaml").is_file():
        raise JwksError(f"{overlay}: no kustomization.yaml")
    target = out / "kustomization.yaml"
    if target.exists() and not target.read_text(encoding="utf-8").startswith(HEADER):
        raise JwksError(f"{target} exists and was not written by this tool: choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(kustomization(overlay, out, jwks), sort_keys=False, width=1 << 20)
    target.write_text(HEADER + body, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jwks", type=Path, required=True, help="the JWKS file (jwks.json of the Secret)")
    parser.add_argument(
        "--overlay", type=Path, required=True, help="the overlay to deploy (k8s/overlays/...)"
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the new overlay")
    args = parser.parse_args(argv)
    try:
        target = write(args.overlay, args.out, read_jwks(args.jwks))
    except (JwksError, OSError) as error:
        print(f"mesh_jwks: {error}", file=sys.stderr)
        return 1
    print(f"wrote {target}: kubectl apply -k {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
