from __future__ import annotations

from benchmarks.memory.run import main

main()
