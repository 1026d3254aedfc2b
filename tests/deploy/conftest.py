from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools.validate_deploy import ROOT, Doc, Layout, render

SCHEMAS = ROOT.parent / "shared" / "schemas" / "istio"


@pytest.fixture(scope="session")
def layout() -> Layout:
    if not SCHEMAS.is_dir():
        pytest.fail(f"Istio schemas missing at {SCHEMAS} (../shared/schemas/istio from the repository)")
    return Layout(schemas=SCHEMAS)


@pytest.fixture(scope="session", params=["dev", "prod"])
def rendered(request: pytest.FixtureRequest, layout: Layout) -> list[Doc]:
    return render(layout.root / "k8s" / "overlays" / str(request.param))


@pytest.fixture
def broken(tmp_path: Path, layout: Layout) -> Layout:
    """A copy of k8s/ and istio/ to break; the code and the schemas stay the real ones."""
    for name in ("k8s", "istio"):
        shutil.copytree(layout.root / name, tmp_path / name)
    return Layout(root=tmp_path, services=layout.services, schemas=layout.schemas)
