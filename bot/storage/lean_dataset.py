"""``dataset``, imported without alembic.

dataset imports alembic's ``MigrationContext`` and ``Operations`` when it is imported, for one
property (``Database.op``: adding or dropping a column). The bot creates its whole schema from
SQL up front and never asks dataset for a column, yet alembic (with mako and pygments) costs
about 10 MB of RSS and a few hundred ms at every start of the bot. So, only while dataset is being
imported, those two names are stand-ins that import the real alembic the first time they are
used (called, or an attribute read); once dataset is in, nothing named alembic is left in
``sys.modules``, and any later import of alembic, by anyone, is the real one.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

_DEFERRED = {"alembic.migration": "MigrationContext", "alembic.operations": "Operations"}
_lock = threading.Lock()


class _OnFirstUse:
    """Stands for ``module.name`` and hands every use to the real object, imported then."""

    def __init__(self, module: str, name: str) -> None:
        self._where = (module, name)

    def _real(self) -> Any:
        module, name = self._where
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._real()(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._real(), attribute)

    def __repr__(self) -> str:
        return f"<{'.'.join(self._where)}, imported on first use>"


def _import_dataset() -> types.ModuleType:
    with _lock:
        if "dataset" in sys.modules or "alembic" in sys.modules:
            return importlib.import_module("dataset")  # alembic is loaded anyway: nothing to save
        package = types.ModuleType("alembic")
        package.__path__ = []
        stand_ins: dict[str, types.ModuleType] = {"alembic": package}
        for module, name in _DEFERRED.items():
            stand_in = types.ModuleType(module)
            setattr(stand_in, name, _OnFirstUse(module, name))
            stand_ins[module] = stand_in
        sys.modules.update(stand_ins)
        try:
            return importlib.import_module("dataset")
        finally:
            for module, stand_in in stand_ins.items():
                if sys.modules.get(module) is stand_in:
                    del sys.modules[module]


dataset = _import_dataset()
