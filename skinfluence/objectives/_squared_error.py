"""Squared error: LinearRegression, Ridge, RidgeCV and SGDRegressor."""

import numpy as np

from ._family import LossFamily, encode_single_target


class SquaredError(LossFamily):
    """``loss = scale * (y - eta)^2`` for a single output."""

    n_outputs = 1
    classes = None

    def __init__(self, scale=1.0):
        self.scale = scale

    def encode(self, y):
        return encode_single_target(y)

    def loss(self, y, eta):
        return self.scale * (y - eta[:, 0]) ** 2

    def gradient(self, y, eta):
        return -2.0 * self.scale * (y[:, None] - eta)

    def hessian(self, y, eta):
        return np.full((eta.shape[0], 1, 1), 2.0 * self.scale)

    def output_gradient(self, eta, output, class_index):
        return np.ones_like(eta)
