"""Matplotlib displays for influence results (the ``plot`` extra).

Each display follows scikit-learn's convention: ``from_estimator`` computes
what it shows, ``from_predictions`` takes precomputed values, and ``plot``
draws on an Axes and stores the artists. Importing this module does not import
matplotlib; drawing does.
"""

from ._features import FeatureInfluenceDisplay, feature_influence
from ._influential import InfluentialExamplesDisplay
from ._lds import LDSDisplay
from ._loo import LOOAgreementDisplay
from ._mislabel import MislabelCurveDisplay

__all__ = [
    "FeatureInfluenceDisplay",
    "InfluentialExamplesDisplay",
    "LDSDisplay",
    "LOOAgreementDisplay",
    "MislabelCurveDisplay",
    "feature_influence",
]
