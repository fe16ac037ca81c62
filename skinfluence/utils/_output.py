"""scikit-learn's output convention for per-row results.

``set_output(transform="pandas")`` on an estimator, or
``sklearn.set_config(transform_output="pandas")``, asks for pandas
containers; the estimator's own setting wins over the global one. Results
per training row then become Series (or DataFrames) indexed by the rows'
index labels, or by positions where the input had no index. The setting is
read when a result is returned, so it may change after ``fit``.
"""

import numpy as np
from sklearn import get_config


def row_labels(index, n):
    """The rows' index labels, or their positions when ``index`` is None."""
    import pandas as pd

    return pd.RangeIndex(n) if index is None else index


class PandasOutputMixin:
    """``set_output`` and the per-row containers that follow it."""

    def set_output(self, *, transform=None):
        """Choose the container of the per-row results, as scikit-learn does.

        With ``transform="pandas"`` (or ``sklearn.set_config(
        transform_output="pandas")``, which this setting overrides), results
        per row are pandas objects indexed by the rows' index labels
        (positions where the input had no index); the estimator's docstring
        says which. The setting is read when a result is returned, so it may
        change after ``fit``.

        Parameters
        ----------
        transform : {"default", "pandas"}, default=None
            None leaves the setting unchanged.

        Returns
        -------
        self : estimator
        """
        if transform is None:
            return self
        if transform not in ("default", "pandas"):
            raise ValueError(
                f"transform must be 'default' or 'pandas', got {transform!r}."
            )
        self._sklearn_output_config = {"transform": transform}
        return self

    def _pandas_output(self):
        own = getattr(self, "_sklearn_output_config", {}).get("transform")
        return (own or get_config()["transform_output"]) == "pandas"

    def _per_row(self, values, index, name):
        """``values`` (one per row) as a named Series by ``index``, if asked.

        Lazy (dask) results and anything but an ndarray stay as they are.
        """
        if not self._pandas_output() or not isinstance(values, np.ndarray):
            return values
        import pandas as pd

        return pd.Series(values, index=row_labels(index, len(values)), name=name)
