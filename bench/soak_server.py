"""`leadflow serve` that can say what its memory holds, for `bench.soak --tracemalloc` and `--census`.

    .venv/bin/python bench/soak_server.py SNAPSHOT_PREFIX [serve options...]

Starts tracemalloc (frames per trace: SOAK_TRACEMALLOC_FRAMES, default 1; 0 leaves it off), then runs the `serve`
command exactly as the `leadflow` executable does. Each SIGUSR1 writes a tracemalloc snapshot to SNAPSHOT_PREFIX.1,
.2, ... (when tracing; load them with tracemalloc.Snapshot.load), then SNAPSHOT_PREFIX.N.json: the filled functools
caches, the module-level containers with more than 1,000 items, and the object counts by type. Both are taken in the
main thread, between two steps of the event loop, so requests wait meanwhile.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import signal
import sys
import tracemalloc
from collections import Counter
from types import FrameType
from typing import Any


def census() -> dict[str, Any]:
    objects = gc.get_objects()
    caches = {
        f"{getattr(o, '__module__', '?')}.{getattr(o, '__qualname__', repr(o))}": o.cache_info()._asdict()
        for o in objects
        if isinstance(o, functools._lru_cache_wrapper) and o.cache_info().currsize
    }
    containers = {
        f"{name}.{attr}": len(value)
        for name, module in list(sys.modules.items())
        for attr, value in list(vars(module).items())
        if isinstance(value, dict | list | set) and len(value) > 1000
    }
    types = Counter(type(o).__qualname__ for o in objects).most_common(25)
    return {"lru_caches": caches, "module_containers": containers, "types": dict(types)}


def main() -> None:
    prefix, args = sys.argv[1], sys.argv[2:]
    frames = int(os.environ.get("SOAK_TRACEMALLOC_FRAMES", "1"))
    if frames:
        tracemalloc.start(frames)
    taken = 0

    def dump(_signum: int, _frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        path = f"{prefix}.{taken}"
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(path)
        try:
            found = census()
        except Exception as exc:  # never into the event loop, which this handler interrupts
            found = {"error": repr(exc)}
        with open(path + ".json.part", "w", encoding="utf-8") as f:
            json.dump(found, f, indent=1)
        os.replace(path + ".json.part", path + ".json")  # written last: the reader waits for it

    signal.signal(signal.SIGUSR1, dump)
    from leadflow.cli import app

    app(["serve", *args], prog_name="leadflow")


if __name__ == "__main__":
    main()
