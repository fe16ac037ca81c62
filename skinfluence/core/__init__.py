"""The influence core: formulas on arrays, top-k selection, refits, stationarity.

Pure functions of an objective, a solver and arrays; no estimator, no backend
state. The backends in :mod:`skinfluence.backends` call them.
"""
