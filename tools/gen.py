"""Regenerate gen/ from protos/: `python tools/gen.py` (or `--check` to fail when gen/ is stale).

Python messages, gRPC stubs and typed stubs (.pyi) come from grpcio-tools and mypy-protobuf.
buf/validate/validate.proto is materialised first from the installed protovalidate package.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
DEPS = ROOT / "build" / "protodeps"
GEN = ROOT / "gen"
VALIDATE = "buf/validate/validate.proto"


def _well_known_include() -> Path:
    import grpc_tools  # noqa: PLC0415 - only needed when generating

    return Path(grpc_tools.__file__).parent / "_proto"


def _plugin(name: str) -> str:
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if found is None:
        sys.exit(f"{name} not found: install the test extra (pip install -e '.[test]')")
    return found


def generate(out: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "tools" / "protodeps.py"), str(DEPS)], check=True)
    ours = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    base = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{DEPS}",
        f"-I{_well_known_include()}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--mypy_out={out}",
    ]
    subprocess.run([*base, VALIDATE], check=True)
    subprocess.run([*base, f"--grpc_python_out={out}", f"--mypy_grpc_out={out}", *ours], check=True)
    # The generated code is typed (the .pyi stubs): say so to type checkers of installed hivemesh.
    packages = [out / "hivemesh", *(p for p in (out / "hivemesh").iterdir() if p.is_dir())]
    for package in packages:
        (package / "py.typed").touch()


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if gen/ differs from a fresh generation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        if args.check:
            old = _files(GEN) if GEN.exists() else set()
            new = _files(fresh)
            stale = sorted(str(p) for p in old ^ new)
            stale += sorted(str(p) for p in old & new if not filecmp.cmp(GEN / p, fresh / p, shallow=False))
            if stale:
                print("gen/ is stale; run `python tools/gen.py`. Differences:", *stale, sep="\n  ")
                return 1
            print("gen/ is up to date")
            return 0
        if GEN.exists():
            shutil.rmtree(GEN)
        shutil.copytree(fresh, GEN)
        print(f"generated {len(_files(GEN))} files in gen/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
