"""Import a library while some of its own imports wait until first use.

The renderer's libraries import modules for work twir-mail never asks of them:
premailer imports ``requests`` and cssutils ``urllib.request``,
``importlib.metadata`` and ``encutils``, all to fetch stylesheets over the
network (off here); pymdownx imports ``urllib.request`` for two path helpers
of extensions the renderer does not load. Together about 70 ms of a cold
``check`` or ``render``, which the editor pays on every run.

``import_deferring(module, deferred)`` imports ``module`` with a placeholder
in ``sys.modules`` for each deferred module that is not loaded yet. A
placeholder loads the real module the first time anything reads from it, so a
library that does need it later still gets it. ``from deferred import name``
during the import gets a stand-in function that loads the module when called,
for the names listed (functions only); any other name read during the import
fails loudly instead of being guessed. ``on_load`` gives a deferred module
the setup its importer would have done at once (premailer sets cssutils' log
level when a Premailer is made): it runs when the real module first serves a
placeholder, or at once if that module is loaded already.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Callable


OnLoad = Callable[[types.ModuleType], None]


class _Deferred(types.ModuleType):
    """Stands in for a module at someone else's import; the real one loads on first use."""

    def __init__(self, name: str, callables: tuple[str, ...], on_load: OnLoad | None = None):
        super().__init__(name)
        self._callables = callables
        self._on_load = on_load

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_callables", "_on_load"):
            raise AttributeError(name)  # the import system probing
        if sys.modules.get(self.__name__) is self:  # still inside the import
            if name in self._callables:
                return _stand_in(self.__name__, name)
            raise AttributeError(f"{self.__name__}.{name} read while its import is deferred")
        module = importlib.import_module(self.__name__)
        if self._on_load is not None:
            hook, self._on_load = self._on_load, None  # once (hooks are idempotent: a race is harmless)
            hook(module)
        return getattr(module, name)


def _stand_in(module: str, name: str):
    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__module__ = module
    return call


def import_deferring(module: str, deferred: dict[str, tuple[str, ...]], on_load: dict[str, OnLoad] | None = None):
    """Import ``module`` while each module of ``deferred`` (not yet loaded) is a placeholder.

    ``deferred`` maps a module name to the functions that may be from-imported from it;
    ``on_load`` a deferred module's name to the setup it needs once it is loaded for real.
    """
    on_load = on_load or {}
    for name, hook in on_load.items():
        if name in sys.modules and not isinstance(sys.modules[name], _Deferred):
            hook(sys.modules[name])
    if module in sys.modules:
        return sys.modules[module]
    stubs = {name: _Deferred(name, callables, on_load.get(name))
             for name, callables in deferred.items() if name not in sys.modules}
    for name, stub in stubs.items():
        sys.modules[name] = stub
        parent, _, child = name.rpartition(".")
        if parent:
            # `import urllib.request` binds `urllib` and reads `.request` when used.
            setattr(importlib.import_module(parent), child, stub)
    try:
        return importlib.import_module(module)
    finally:
        for name, stub in stubs.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]  # later imports of it get the real module
