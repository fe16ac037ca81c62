"""Turning score matrices into tidy top-k tables."""

import numpy as np
import pandas as pd


def _top_columns(scores, k, largest):
    """Column indices of the k largest (or smallest) entries per row, sorted."""
    k = min(k, scores.shape[1])
    values = scores if largest else -scores
    part = np.argpartition(-values, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(values, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def top_k_table(scores, influence, k, labels, train_index=None, test_index=None):
    """Long-format table of the most helpful and harmful rows per test row.

    A negative influence (``I_up,loss``) means upweighting the row lowers the
    test loss: the row is helpful. ``scores`` ranks (influence or RelatIF);
    ``influence`` is reported beside it.
    """
    n_test, n_train = scores.shape
    train_names = np.arange(n_train) if train_index is None else np.asarray(train_index)
    test_names = np.arange(n_test) if test_index is None else np.asarray(test_index)
    frames = []
    for kind, largest in (("helpful", False), ("harmful", True)):
        cols = _top_columns(scores, k, largest)
        kk = cols.shape[1]
        rows = np.repeat(np.arange(n_test), kk)
        flat = cols.ravel()
        frames.append(
            pd.DataFrame(
                {
                    "_position": rows,
                    "test_row": test_names[rows],
                    "kind": kind,
                    "rank": np.tile(np.arange(1, kk + 1), n_test),
                    "train_row": train_names[flat],
                    "score": scores[rows, flat],
                    "influence": influence[rows, flat],
                    "label": np.asarray(labels)[flat],
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table["kind"] = pd.Categorical(table["kind"], ["helpful", "harmful"])
    table = table.sort_values(
        ["_position", "kind", "rank"], kind="stable", ignore_index=True
    )
    return table.drop(columns="_position")
