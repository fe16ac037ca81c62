"""Mislabel detection and label cleaning for pipelines.

- :mod:`._scores`: the detector's default model and how rows are scored;
- :mod:`._noise`: the label-noise model behind ``contamination='auto'``;
- :mod:`._detector`: :class:`~skinfluence.MislabelDetector` (an
  imbalanced-learn sampler);
- :mod:`._classifier`: :class:`CleanLabelsClassifier`.
"""

from ..exceptions import OverCleaningWarning
from ._classifier import CleanLabelsClassifier
from ._detector import MIN_POSTERIOR, REFIT_POSTERIOR, MislabelDetector
from ._noise import EVIDENCE_LIMIT, NoiseModel, fit_noise_model, label_evidence
from ._scores import METHODS, default_estimator, score_rows

__all__ = [
    "EVIDENCE_LIMIT",
    "METHODS",
    "MIN_POSTERIOR",
    "REFIT_POSTERIOR",
    "CleanLabelsClassifier",
    "MislabelDetector",
    "NoiseModel",
    "OverCleaningWarning",
    "default_estimator",
    "fit_noise_model",
    "label_evidence",
    "score_rows",
]
