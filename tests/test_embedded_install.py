"""`pip install .` without extras must run the embedded mesh and the edge's OpenAI door: no optional
client library (redis, asyncpg, qdrant-client, mcp, torch) may be imported unless its backend is
configured."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import sys

    OPTIONAL = {"redis", "asyncpg", "qdrant_client", "mcp", "torch", "sentence_transformers"}

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in OPTIONAL:
                raise ImportError(f"{name} is an optional extra")
            return None

    sys.meta_path.insert(0, Block())

    from hivemesh.mesh.channels import ChannelFactory
    from hivemesh.mesh.config import SERVICES, Settings
    from hivemesh.mesh.launch import builder
    from hivemesh.mesh.metrics import Metrics
    import hivemesh.cli  # noqa: F401

    settings = Settings.from_env({"HIVEMESH_DATA_DIR": sys.argv[1], "HIVEMESH_METRICS_PORT": "off",
                                  "HIVEMESH_AUTH": "none"})
    for name in SERVICES:
        builder(name)(settings, ChannelFactory(settings), Metrics())

    # The edge serves its OpenAI door without the mcp package, and leaves the MCP door out.
    from hivemesh.edge.app import Edge, mcp_available
    from hivemesh.edge.config import EdgeConfig

    assert not mcp_available()
    assert not Edge(settings, EdgeConfig()).mcp
    print("ok")
    """
)


def test_the_embedded_mesh_needs_no_optional_extra(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
