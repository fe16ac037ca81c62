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


class StreamingTopK:
    """Running k most helpful and k most harmful training rows per test row.

    Fed blocks of columns (training rows) one at a time, it keeps only
    ``2 k`` candidates per test row, so a ranking over millions of training
    rows never holds the full (n_test, n_train) matrix.
    """

    def __init__(self, k):
        self.k = k
        self.kept = {}  # kind -> (columns, scores, influence), each (n_test, <=k)

    def update(self, start, scores, influence):
        """Merge the block of training rows ``start:start + scores.shape[1]``."""
        cols = np.broadcast_to(start + np.arange(scores.shape[1]), scores.shape)
        new = (cols, scores, influence)
        self._merge({"helpful": new, "harmful": new})

    def merge(self, other):
        """Merge the candidates of another instance (later training rows)."""
        self._merge(other.kept)

    @classmethod
    def stack(cls, parts):
        """One instance for the test rows of ``parts`` (in order) together."""
        top = cls(parts[0].k)
        top.kept = {
            kind: tuple(np.vstack(a) for a in zip(*(p.kept[kind] for p in parts)))
            for kind in parts[0].kept
        }
        return top

    def _merge(self, candidates):
        for kind, largest in (("helpful", False), ("harmful", True)):
            if kind in self.kept:
                old = self.kept[kind]
                cols_, scores_, infl_ = (
                    np.hstack([o, b]) for o, b in zip(old, candidates[kind])
                )
            else:
                cols_, scores_, infl_ = candidates[kind]
            pick = _top_columns(scores_, self.k, largest)
            self.kept[kind] = tuple(
                np.take_along_axis(a, pick, axis=1) for a in (cols_, scores_, infl_)
            )

    def rows(self):
        """Sorted positions of every training row kept, for either kind."""
        return np.unique(np.concatenate([v[0].ravel() for v in self.kept.values()]))

    def table(self, labels, train_index=None, test_index=None, extra=None):
        """Long-format DataFrame (see :func:`top_k_table`).

        ``extra``: ``{column: (n_test, n_rows) array}`` of per-pair values to
        add, read at each kept row's position in :meth:`rows`.
        """
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:  # skorch's (n, 1) targets
            labels = labels[:, 0]
        elif labels.ndim == 2:  # several targets: one tuple per row
            rows = labels.tolist()
            labels = np.empty(len(rows), dtype=object)
            labels[:] = [tuple(r) for r in rows]
        frames = []
        kept_rows = self.rows() if extra else None
        for kind in ("helpful", "harmful"):
            cols, scores, infl = self.kept[kind]
            n_test, kk = cols.shape
            test_names = (
                np.arange(n_test) if test_index is None else np.asarray(test_index)
            )
            flat = cols.ravel()
            train_names = flat if train_index is None else np.asarray(train_index)[flat]
            frames.append(
                pd.DataFrame(
                    {
                        "_position": np.repeat(np.arange(n_test), kk),
                        "test_row": np.repeat(test_names, kk),
                        "kind": kind,
                        "rank": np.tile(np.arange(1, kk + 1), n_test),
                        "train_row": train_names,
                        "score": scores.ravel(),
                        "influence": infl.ravel(),
                        "label": labels[flat],
                        **{
                            name: np.take_along_axis(
                                values, np.searchsorted(kept_rows, cols), axis=1
                            ).ravel()
                            for name, values in (extra or {}).items()
                        },
                    }
                )
            )
        table = pd.concat(frames, ignore_index=True)
        # A row helps only with a negative influence and harms only with a
        # positive one: zeros (a flat test loss) and the other sign's rows,
        # which fill a side when k exceeds them, are listed on neither.
        sign = np.where(table["kind"] == "helpful", -1.0, 1.0)
        table = table[sign * table["influence"].to_numpy() > 0]
        table["kind"] = pd.Categorical(table["kind"], ["helpful", "harmful"])
        table = table.sort_values(
            ["_position", "kind", "rank"], kind="stable", ignore_index=True
        )
        return table.drop(columns="_position").reset_index(drop=True)


def top_k_table(scores, influence, k, labels, train_index=None, test_index=None):
    """Long-format table of the most helpful and harmful rows per test row.

    A negative influence (``I_up,loss``) means upweighting the row lowers the
    test loss: the row is helpful. ``scores`` ranks (influence or RelatIF);
    ``influence`` is reported beside it.
    """
    top = StreamingTopK(k)
    top.update(0, scores, influence)
    return top.table(labels, train_index, test_index)
