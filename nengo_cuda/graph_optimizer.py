"""NengoDL's graph optimizer settings, by name, for code that sets them.

NengoDL merged operators into TensorFlow ops with a configurable planner,
signal sorter and list of graph simplifications, chosen with
``nengo_dl.configure_settings(planner=nengo_dl.graph_optimizer.noop_planner)``
and the like (often to build large converted models faster).  nengo_cuda
merges operators with its own planner (`nengo_cuda.planner`), which has no
such choices: these names exist so that such code runs unchanged, and
`nengo_cuda.configure_settings` accepts and ignores them.  They are markers,
not functions to call.
"""

__all__ = [
    "greedy_planner", "tree_planner", "transitive_planner", "noop_planner",
    "order_signals", "noop_order_signals",
    "remove_unmodified_resets", "remove_zero_incs", "remove_identity_muls",
    "remove_constant_copies", "remove_reset_incs", "default_simplifications",
]


def _marker(name, kind):
    def marker(*args, **kwargs):
        raise NotImplementedError(
            f"nengo_cuda.graph_optimizer.{name} is NengoDL's {kind}, accepted by "
            "configure_settings for compatibility; nengo_cuda's planner does not run it")

    marker.__name__ = marker.__qualname__ = name
    marker.__doc__ = (f"NengoDL's {kind} ``{name}``: accepted by `configure_settings`, "
                      "ignored (see the module doc).")
    marker.kind = kind
    return marker


greedy_planner = _marker("greedy_planner", "planner")
tree_planner = _marker("tree_planner", "planner")
transitive_planner = _marker("transitive_planner", "planner")
noop_planner = _marker("noop_planner", "planner")
order_signals = _marker("order_signals", "sorter")
noop_order_signals = _marker("noop_order_signals", "sorter")
remove_unmodified_resets = _marker("remove_unmodified_resets", "simplification")
remove_zero_incs = _marker("remove_zero_incs", "simplification")
remove_identity_muls = _marker("remove_identity_muls", "simplification")
remove_constant_copies = _marker("remove_constant_copies", "simplification")
remove_reset_incs = _marker("remove_reset_incs", "simplification")

# (NengoDL's default list, which code extends: ``default_simplifications + (...)``)
default_simplifications = (remove_unmodified_resets, remove_zero_incs, remove_identity_muls,
                           remove_constant_copies, remove_reset_incs)
