"""A labeller's helper process: ``python -m perfsage.labelers._worker`` (started by ``_helper``).

Runs one task per request until stdin closes; see ``_helper`` for why and for the protocol. Kept
apart from ``_helper`` so that the package never imports the module that ``python -m`` runs.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any, Callable, Tuple

from .. import _rpc
from ._base import TaskError

_TASK_PREFIX = "perfsage.labelers."


def _resolve(task: str) -> Callable[..., Any]:
    module_name, _, function_name = task.partition(":")
    if not module_name.startswith(_TASK_PREFIX) or not function_name:
        raise ValueError(f"task {task!r} is not a perfsage.labelers function")
    return getattr(importlib.import_module(module_name), function_name)


def serve() -> None:
    """The helper's main loop: one request at a time until stdin closes."""
    requests = sys.stdin.buffer
    replies = _rpc.take_stdout()
    while True:
        try:
            request = _rpc.read_message(requests)
            if request is None:
                return
            task, args = request
            reply: Tuple[str, Any] = ("ok", _resolve(task)(*args))
        except TaskError as exc:
            reply = ("error", str(exc))
        except Exception as exc:  # a bug, not the model: keep where it happened
            tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
            reply = ("error", f"{type(exc).__name__}: {exc}\n{tail}")
        _rpc.write_message(replies, reply)


if __name__ == "__main__":
    serve()
