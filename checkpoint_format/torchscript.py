"""
TorchScript's load, save and script, as every part of namegen calls them.

torch 2.13 marks `torch.jit.load`, `torch.jit.save` and `torch.jit.script` deprecated in favour of
torch.export; the checkpoint contract is TorchScript by design, so these wrappers silence exactly
that notice (tests run with warnings as errors). Loading maps to the CPU and returns the module in
eval mode with its extra files (meta.json, items.txt, ...) as text. This submodule imports torch;
the package root (checkpoint_format) stays standard library only.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

# one block at a time in a process: catch_warnings swaps the process's warning filters (a second
# thread leaving its block would restore them under the first), and TorchScript's compiler reads
# Python source with the ast module, which two threads may not run at once (CPython: "AST
# constructor recursion depth mismatch"). The service loads checkpoints side by side
# (app/inference/registry.py), and their checks, outside these blocks, still run together
_ONE_AT_A_TIME = threading.RLock()


@contextmanager
def quiet() -> Iterator[None]:
    """Silence torch's TorchScript deprecation notices inside the block, one thread at a time."""
    with _ONE_AT_A_TIME, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit\.")
        yield


def load(
    source: Path | bytes, extra_files: tuple[str, ...] = ()
) -> tuple[torch.jit.ScriptModule, dict[str, str]]:
    """The module in a TorchScript archive (a path or its bytes), on the CPU and in eval mode, and
    the named extra files as text ("" where absent). Raises what torch raises for a bad archive."""
    extra: dict[str, str | bytes] = dict.fromkeys(extra_files, "")
    arg: str | io.BytesIO = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with quiet():
        module: torch.jit.ScriptModule = torch.jit.load(  # type: ignore[no-untyped-call]
            arg, map_location="cpu", _extra_files=extra
        )
    text = {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in extra.items()}
    return module.eval(), text


def save(module: torch.jit.ScriptModule, path: Path, extra_files: dict[str, str]) -> None:
    """Write `module` with `extra_files` to `path` (not atomically: see training/export.py)."""
    with quiet():
        torch.jit.save(module, str(path), _extra_files=extra_files)


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """torch.jit.script, quietly."""
    with quiet():
        scripted: torch.jit.ScriptModule = torch.jit.script(module)
    return scripted
