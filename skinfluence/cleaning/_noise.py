"""The label-noise model behind ``contamination='auto'``, on held-out outputs.

Each row's given label is the held-out model's class with probability
``1 - rate`` and, with probability ``rate``, one of the other classes drawn
uniformly; the held-out probabilities are sharpened or softened by a
temperature. Both are fitted by maximum likelihood (:func:`fit_noise_model`),
and each row's posterior probability that its label is wrong follows.
``label_evidence`` says whether the outputs explain the labels better
than the class shares do. Pure functions on arrays.
"""

from collections import namedtuple

import numpy as np
from scipy.special import expit
from scipy.stats import chi2

#: The label-noise model fitted to held-out outputs (see :func:`fit_noise_model`).
NoiseModel = namedtuple("NoiseModel", ["rate", "temperature", "posterior"])

#: Below this ``label_evidence`` the held-out outputs are taken to say
#: nothing about the labels: chi-squared with 2 degrees of freedom exceeds it
#: with probability 1e-3.
EVIDENCE_LIMIT = float(chi2.isf(1e-3, 2))


def _given_label_probability(eta, t):
    """``f(a) -> (s, ds/da, d2s/da2)``: each row's probability of its given
    label under ``softmax(a * eta)`` (for one output, a sigmoid of the given
    label's log-odds) and its first two derivatives in the temperature ``a``.
    """
    if eta.shape[1] == 1:
        z = np.where(t == 1, eta[:, 0], -eta[:, 0])

        def binary(a):
            s = expit(a * z)
            ds = s * (1.0 - s) * z
            return s, ds, ds * (1.0 - 2.0 * s) * z

        return binary
    # Classes by rows: the sums over classes add K contiguous rows.
    Z = np.ascontiguousarray((eta - eta.max(axis=1, keepdims=True)).T)
    Z2 = Z**2  # a * Z <= 0: exp never overflows
    rows = np.arange(len(t))
    z_given = Z[t, rows]

    def softmax(a):
        E = np.exp(a * Z)
        E /= E.sum(axis=0)
        s = E[t, rows]
        mean = np.einsum("kn,kn->n", E, Z)
        spread = np.einsum("kn,kn->n", E, Z2) - mean**2
        ds = s * (z_given - mean)
        return s, ds, ds * (z_given - mean) - s * spread

    return softmax


def _last_call_kept(func):
    """``func`` of one number, answering a repeat of its last call from memory.

    The posterior is read at the fitted temperature, almost always the last
    one the fit evaluated.
    """
    last = {}

    def kept(a):
        if last.get("a") != a:
            last["a"], last["out"] = a, func(a)
        return last["out"]

    return kept


def _noise_likelihood(given, K):
    """``f(a, r) -> (log-likelihood, gradient, Hessian)`` of the noise model."""
    kappa = K / (K - 1)

    def f(a, r):
        s, ds, d2s = given(a)
        c = 1.0 - r * kappa
        m = c * s + r / (K - 1)
        m_a, m_r = c * ds / m, (1.0 / (K - 1) - kappa * s) / m
        grad = np.array([m_a.sum(), m_r.sum()])
        h_aa = np.sum(c * d2s / m - m_a**2)
        h_ar = np.sum(-kappa * ds / m - m_a * m_r)
        hess = np.array([[h_aa, h_ar], [h_ar, -np.sum(m_r**2)]])
        return np.log(m).sum(), grad, hess

    return f


def _temperature_likelihood(given, K, rate):
    """``f(a) -> (log-likelihood, gradient, Hessian)`` at a fixed ``rate``.

    The temperature's terms of :func:`_noise_likelihood`, computed the same
    way: later rounds hold the rate, so its derivatives would go unused.
    """
    kappa = K / (K - 1)
    c, floor = 1.0 - rate * kappa, rate / (K - 1)

    def f(a):
        s, ds, d2s = given(a)
        m = c * s + floor
        m_a = c * ds / m
        hess = np.array([[np.sum(c * d2s / m - m_a**2)]])
        return np.log(m).sum(), np.array([m_a.sum()]), hess

    return f


def _maximize(f, x, lower, upper, max_iter=100):
    """Projected Newton ascent with backtracking, for the noise parameters.

    Where the Hessian is not negative definite, a gradient step scaled by its
    diagonal; a parameter at a bound its gradient pushes against stays there.
    """
    value, grad, hess = f(*x)
    for _ in range(max_iter):
        free = ~(((x <= lower) & (grad < 0)) | ((x >= upper) & (grad > 0)))
        if not free.any():
            break
        H = hess[np.ix_(free, free)]
        step = np.zeros(len(x))
        try:
            np.linalg.cholesky(-H)
            step[free] = np.linalg.solve(-H, grad[free])
        except np.linalg.LinAlgError:
            step[free] = grad[free] / np.maximum(np.abs(np.diag(H)), 1e-12)
        tried = None
        for _ in range(40):
            new = np.clip(x + step, lower, upper)
            # A step clipped to a bound can land where the last halving did:
            # the same point fails the same test, so it is not evaluated again.
            if tried is None or not np.array_equal(new, tried):
                tried = new
                new_value, new_grad, new_hess = f(*new)
            if new_value >= value + 1e-4 * grad @ (new - x):
                break
            step /= 2
        else:
            break
        done = abs(new_value - value) <= 1e-10 * (1 + abs(value))
        x, value, grad, hess = new, new_value, new_grad, new_hess
        if done:
            break
    return x


def fit_noise_model(eta, t, rate=None, start=None):
    """Fit symmetric label noise on top of recalibrated held-out outputs.

    Each given label is modelled as drawn from ``softmax(temperature * eta)``
    with probability ``1 - rate``, else uniformly from the other classes;
    ``rate`` and ``temperature`` maximize the likelihood of the given labels
    (projected Newton steps on the two parameters, analytic derivatives).

    Parameters
    ----------
    eta : ndarray of shape (n_samples, n_outputs)
        Held-out linear outputs (one column: the log-odds of the second class).
    t : ndarray of int of shape (n_samples,)
        Position of each row's given label among the classes.
    rate : float, default=None
        A known rate: only the temperature is fitted. None: both, the rate in
        [0, 0.5].
    start : NoiseModel, default=None
        A previous fit to start from (later rounds); None: temperature 1,
        rate 0.05.

    Returns
    -------
    NoiseModel
        ``rate`` (the estimated share of wrong labels), ``temperature``, and
        ``posterior`` of shape (n_samples,): each row's probability that its
        label is wrong under the fitted model.

    Examples
    --------
    >>> import numpy as np
    >>> from skinfluence.cleaning import fit_noise_model
    >>> rng = np.random.default_rng(0)
    >>> eta = rng.normal(0, 4, size=(20000, 1))  # calibrated log-odds
    >>> t = (rng.random(20000) < 1 / (1 + np.exp(-eta[:, 0]))).astype(int)
    >>> wrong = rng.random(20000) < 0.1
    >>> t[wrong] = 1 - t[wrong]  # 10% of the labels flipped
    >>> noise = fit_noise_model(eta, t)
    >>> round(noise.rate, 3), round(noise.temperature, 2)
    (0.099, 0.95)
    """
    K = max(eta.shape[1], 2)
    given = _last_call_kept(_given_label_probability(eta, t))
    a0 = 1.0 if start is None else start.temperature
    if rate is None:
        lower, upper = np.array([1e-3, 1e-9]), np.array([1e3, 0.5])
        x0 = [a0, 0.05 if start is None else start.rate]
        a, rate = _maximize(
            _noise_likelihood(given, K), np.clip(x0, lower, upper), lower, upper
        )
    else:  # the temperature alone
        lower, upper = np.array([1e-3]), np.array([1e3])
        f = _temperature_likelihood(given, K, rate)
        (a,) = _maximize(f, np.clip([a0], lower, upper), lower, upper)
    s, floor = given(a)[0], rate / (K - 1)
    posterior = floor * (1.0 - s) / ((1.0 - rate * K / (K - 1)) * s + floor)
    return NoiseModel(float(rate), float(a), posterior)


def label_evidence(eta, t, noise):
    """How much better than the class shares the noise model explains the labels.

    Twice the log-likelihood ratio of the given labels under ``noise`` (fitted
    to the held-out outputs ``eta`` by :func:`fit_noise_model`) against a
    model that draws each label from the class shares, which ignores the
    rows. Held-out outputs that carry no information about the labels give a
    statistic of a few units (chi-squared with the noise model's two
    parameters); below :data:`EVIDENCE_LIMIT` they cannot tell a wrong label
    from a hard row.
    """
    K = max(eta.shape[1], 2)
    s = _given_label_probability(eta, t)(noise.temperature)[0]
    given = (1.0 - noise.rate) * s + noise.rate / (K - 1) * (1.0 - s)
    shares = np.bincount(t, minlength=K) / len(t)
    tiny = np.finfo(float).tiny
    return float(2.0 * (np.log(np.maximum(given, tiny)) - np.log(shares[t])).sum())
