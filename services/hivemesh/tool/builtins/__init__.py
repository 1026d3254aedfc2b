"""The built-in tools, one module per tool or family. Adding a tool is adding a module here that
defines it with ``@tool``: ``discover`` imports every module of this package and collects them."""

from __future__ import annotations

import importlib
import pkgutil

from hivemesh.tool.decorator import FunctionTool


def discover() -> list[FunctionTool]:
    """Every tool defined at the top level of a module of this package, by name."""
    found: dict[str, FunctionTool] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, FunctionTool):
                if value.spec.name in found and found[value.spec.name] is not value:
                    raise ValueError(f"two built-in tools are named {value.spec.name!r}")
                found[value.spec.name] = value
    return [found[name] for name in sorted(found)]
