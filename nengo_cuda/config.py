"""NengoDL's ``nengo_dl.config`` module (``from nengo_dl.config import
configure_settings``): the settings live in `nengo_cuda.training.config`."""

from .training.config import configure_settings, get_setting

__all__ = ["configure_settings", "get_setting"]
