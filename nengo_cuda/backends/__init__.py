"""Backends execute a planned program: ``cpu`` (C++ step loop) and ``cuda``."""

from .select import select_backend  # noqa: F401
