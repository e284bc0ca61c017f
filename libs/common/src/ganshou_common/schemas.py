"""Every generated protobuf module, loaded, so the default pool knows every event type."""

from __future__ import annotations

import functools
import importlib
import pkgutil

import ganshou


@functools.cache
def load_all_schemas() -> int:
    count = 0
    for info in pkgutil.walk_packages(ganshou.__path__, "ganshou."):
        if info.name.endswith("_pb2"):
            importlib.import_module(info.name)
            count += 1
    return count
