"""Tools the agent's language model may call, declared in a plain Python module.

A tools module has a list ``TOOLS`` of Pipecat *direct functions*: async functions whose first
parameter is ``params: FunctionCallParams`` and whose docstring (Google style) describes the
tool and its arguments; Pipecat builds the JSON schema from the signature and docstring and
calls the function when the model asks. Deliver the result with ``await params.result_callback(...)``.
``voxa.agent.example_tools`` ships two: the current time, and ending the call.

    [agent]
    tools = "mytools"            # a module on sys.path, or a path to a .py file
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from ..errors import InputError


def load(spec: str | None) -> list:
    if not spec:
        return []
    try:
        if spec.endswith(".py") or "/" in spec:
            path = Path(spec).expanduser()
            if not path.is_file():
                raise InputError(f"agent.tools: {spec}: no such file")
            loader = importlib.util.spec_from_file_location(f"voxa_agent_tools_{path.stem}", path)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(spec)
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"agent.tools: cannot import {spec}: {type(e).__name__}: {e}") from None
    tools = getattr(module, "TOOLS", None)
    if not isinstance(tools, (list, tuple)) or not all(callable(t) for t in tools):
        raise InputError(f"agent.tools: {spec} must define TOOLS, a list of async functions")
    from pipecat.adapters.llm.schemas.direct_function import DirectFunctionWrapper

    for tool in tools:
        try:
            DirectFunctionWrapper(tool)  # checks the signature and docstring now, not mid-call
        except Exception as e:
            raise InputError(f"agent.tools: {spec}.{getattr(tool, '__name__', tool)}: {e}") from None
    return list(tools)
