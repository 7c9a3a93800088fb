"""The check ``spi.py`` promises: a store opens only if its backend names in
``capabilities`` no capability that has a protocol (implementing the protocol is that
capability's one declaration), and offers every capability its plugins need.

A plugin needs a capability when it lists it in ``clonestore_required_capabilities``
or when one of its tables asks for a guaranteed option (``append_only``). The
check runs once, when the store opens, before any table is created.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

import pluggy

from clonestore.errors import ConfigurationError
from clonestore.schema import TableSpec
from clonestore.spi import CAPABILITIES, CAPABILITY_PROTOCOLS, Backend, capabilities_of

__all__ = ["check_capabilities"]

#: Table options a backend must implement when a table asks for them (the
#: others, ``ephemeral``, are hints a backend without the capability may ignore).
_GUARANTEED_OPTIONS = ("append_only",)


def _plugin_label(impl: pluggy.HookImpl) -> str:
    """A plugin's entry-point name, or its class (or module) name when registered
    as an object (pluggy then names it by ``id()``)."""
    name = impl.plugin_name
    if not name.isdigit():
        return name
    plugin = impl.plugin
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def _missing(backend: Backend, url: str, plugin: str, capability: str, why: str) -> None:
    scheme = url.split("://", 1)[0]
    raise ConfigurationError(
        f"plugin {plugin!r} needs the {capability!r} capability ({why}), which the "
        f"{backend.name!r} backend ({scheme}://) does not offer; use a backend that "
        f"offers it, or configure the plugin not to need it"
    )


def check_capabilities(
    pm: pluggy.PluginManager, backend: Backend, tables: Mapping[str, TableSpec], url: str
) -> None:
    """Raise :class:`ConfigurationError` for the first capability with a protocol that
    ``backend`` names in ``capabilities``, or that a plugin needs and it does not offer."""
    for capability in sorted(backend.capabilities):
        protocol = CAPABILITY_PROTOCOLS.get(capability)
        if protocol is not None:
            raise ConfigurationError(
                f"the {backend.name!r} backend names the {capability!r} capability in "
                f"capabilities; a capability with a protocol is declared by implementing "
                f"it (clonestore.spi.{protocol.__name__}) only: remove the name"
            )
    declared = capabilities_of(backend)
    for impl in pm.hook.clonestore_required_capabilities.get_hookimpls():
        needed: Iterable[str] = cast(Iterable[str], impl.function() or ())
        for capability in needed:
            if capability not in CAPABILITIES:
                raise ConfigurationError(
                    f"plugin {_plugin_label(impl)!r} needs {capability!r}, which is not a "
                    f"clonestore capability (known: {', '.join(sorted(CAPABILITIES))})"
                )
            if capability not in declared:
                _missing(backend, url, _plugin_label(impl), capability, "it says so")
    for option in _GUARANTEED_OPTIONS:
        if option in declared:
            continue
        asking = [spec.name for spec in tables.values() if getattr(spec, option)]
        if asking:
            _missing(backend, url, _owner(pm, asking[0]), option, f"for table {asking[0]!r}")


def _owner(pm: pluggy.PluginManager, table: str) -> str:
    """The plugin whose ``clonestore_tables`` declares ``table`` (only on the error path)."""
    for impl in pm.hook.clonestore_tables.get_hookimpls():
        if not (impl.hookwrapper or impl.wrapper):
            specs = cast(Iterable[TableSpec], impl.function() or ())
            if any(spec.name == table for spec in specs):
                return _plugin_label(impl)
    return "clonestore"
