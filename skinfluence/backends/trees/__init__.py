"""Influence for gradient-boosted trees (BoostIn, LeafInfluence, LeafRefit)."""

from ._backend import TREE_METHODS, TreeBackend
from ._checks import check_tree_model
from ._ensemble import TreeEnsemble
from ._structure import is_tree_model, read_ensemble

__all__ = [
    "TREE_METHODS",
    "TreeBackend",
    "TreeEnsemble",
    "check_tree_model",
    "is_tree_model",
    "read_ensemble",
]
