"""Lowerings: turn groups of Nengo operators into native instructions.

Each module handles one operator family and registers, per operator type, a
class with two static methods:

- ``key(op, layout)``: a hashable key; operators with equal keys (and no
  dependency between them) are lowered together.  ``None`` means "no kernel for
  this operator": it runs through a Python callback instead.
- ``lower(ops, layout)``: a list of `~nengo_cuda.program.Instruction`.

Every module in this package is imported here, so adding a family is adding a file.
"""

import importlib
import pkgutil

from .registry import find_lowering, register  # noqa: F401

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("registry", "common"):
        importlib.import_module(f"{__name__}.{_module.name}")
