"""SmoothHingeSVC and the Newton fitters of its linear and kernel forms."""

from ._classes import SmoothHingeSVC

__all__ = ["SmoothHingeSVC"]
