"""The Java and Go clients of docs/clients.md compile against code generated from protos/, where
their toolchains are installed (Java: javac, protoc, the grpc-java plugin and the grpc-java and
protobuf-java jars, as Debian packages them; Go: go). Each is skipped, saying what is missing,
elsewhere. The Node.js client is run against a real mesh in test_node_client.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "clients.md"
# Where Debian's packages put their jars, and the ones the example and the generated code need:
# libprotobuf-java, libgrpc-java, libguava-java, libgeronimo-annotation-1.3-spec-java.
JARS = Path("/usr/share/java")
JAR_NAMES = (
    "protobuf.jar",
    "grpc-api.jar",
    "grpc-stub.jar",
    "grpc-protobuf.jar",
    "grpc-core.jar",
    "grpc-context.jar",
    "guava.jar",
    "geronimo-annotation-1.3-spec.jar",
)
GRPC_JAVA_PLUGIN = shutil.which("protoc-gen-grpc-java") or shutil.which("grpc_java_plugin")
JAVA_TOOLS = {
    "javac": shutil.which("javac"),
    "protoc": shutil.which("protoc"),
    "grpc-java plugin": GRPC_JAVA_PLUGIN,
}

pytestmark = pytest.mark.slow


def example(language: str) -> str:
    """The code block of ``language`` under its own section of docs/clients.md."""
    heading = re.search(rf"^## {language.capitalize()}\b.*$", DOC.read_text(), re.MULTILINE)
    assert heading is not None, f"no {language} section in {DOC}"
    section = DOC.read_text()[heading.end() :]
    match = re.search(rf"^```{language}\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match is not None, f"no ```{language} block in the {language} section of {DOC}"
    return match.group(1)


def _missing_java() -> list[str]:
    missing = [name for name, path in JAVA_TOOLS.items() if path is None]
    jars = [name for name in JAR_NAMES if not _jar(name).exists()]
    return missing + jars


def _jar(name: str) -> Path:
    """A jar of /usr/share/java by its unversioned name (some packages ship only versioned ones)."""
    exact = JARS / name
    if exact.exists():
        return exact
    stem = name.removesuffix(".jar")
    versioned = sorted(JARS.glob(f"{stem}-[0-9]*.jar"))
    return versioned[-1] if versioned else exact


@pytest.mark.timeout(300)
@pytest.mark.skipif(
    bool(_missing_java()), reason=f"Java toolchain incomplete: missing {', '.join(_missing_java())}"
)
def test_the_java_example_compiles_against_the_generated_stubs(tmp_path: Path) -> None:
    deps, generated, classes = tmp_path / "protodeps", tmp_path / "java", tmp_path / "classes"
    for directory in (generated, classes):
        directory.mkdir()
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "protodeps.py"), str(deps)], check=True, capture_output=True
    )
    protos = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos").rglob("*.proto"))
    protoc = subprocess.run(
        [
            str(JAVA_TOOLS["protoc"]),
            f"--plugin=protoc-gen-grpc-java={GRPC_JAVA_PLUGIN}",
            f"-I{ROOT / 'protos'}",
            f"-I{deps}",
            f"--java_out={generated}",
            f"--grpc-java_out={generated}",
            *protos,
            "buf/validate/validate.proto",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert protoc.returncode == 0, protoc.stderr
    # The stubs the example uses are generated where its imports (java_package) say.
    assert (generated / "io/github/hivemesh/gateway/v1/GatewayServiceGrpc.java").exists()
    source = tmp_path / "HivemeshRun.java"
    source.write_text(example("java"))
    classpath = ":".join(str(_jar(name)) for name in JAR_NAMES)
    javac = subprocess.run(
        [
            str(JAVA_TOOLS["javac"]),
            "-nowarn",
            "-cp",
            classpath,
            "-d",
            str(classes),
            *(str(p) for p in generated.rglob("*.java")),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert javac.returncode == 0, javac.stdout + javac.stderr
    assert (classes / "HivemeshRun.class").exists()


@pytest.mark.skipif(shutil.which("go") is None, reason="Go is not installed (no `go` on PATH)")
def test_the_go_example_is_a_main_package_of_the_generated_module() -> None:
    code = example("go")
    assert code.startswith("package main\n")
    # Compiling it needs the generated Go module and its dependencies from the Go module proxy
    # (`buf generate`, then `go build`): where Go is installed, gofmt at least checks its syntax.
    gofmt = subprocess.run(
        [str(Path(str(shutil.which("go"))).parent / "gofmt"), "-l"],
        input=code,
        capture_output=True,
        text=True,
        check=False,
    )
    assert gofmt.returncode == 0, gofmt.stderr
