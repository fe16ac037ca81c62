"""What every display shares: the lazy matplotlib import and style merging."""

import math
import textwrap


def check_matplotlib(caller):
    """Import matplotlib, or say how to install it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"{caller} needs matplotlib, which is not installed. Install the "
            "plotting extra: pip install 'skinfluence[plot]' (or pip install "
            "matplotlib)."
        ) from exc


def new_axes(ax, figsize=None, layout="constrained"):
    """``ax``, or the Axes of a new figure.

    A new figure takes ``layout`` (constrained by default, so tick labels,
    axis labels and titles stay inside it however long they are).
    """
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout=layout)
    return ax


def set_title_within(ax, text, fontsize=10):
    """``ax.set_title``, its lines wrapped where they would run into other Axes.

    A display drawn into a narrow Axes of the caller's (one of several side
    by side) would otherwise run its title into the next one. The drawn
    width is measured against the Axes' (the figure's, when the Axes is
    alone in it) and long lines are split into 2, 3, ... balanced lines
    until it fits.
    """
    title = ax.set_title(text, fontsize=fontsize)
    renderer = ax.figure.canvas.get_renderer()
    alone = len(ax.figure.axes) == 1
    room = (ax.figure if alone else ax).get_window_extent(renderer).width
    lines = text.split("\n")
    longest = max(map(len, lines))
    for parts in range(2, 5):
        if title.get_window_extent(renderer).width <= room:
            break
        chars = math.ceil(longest / parts) + 2  # shorter lines stay whole
        title.set_text("\n".join(textwrap.fill(line, chars) for line in lines))
    return title


def merged(defaults, kwargs):
    """Default style updated by the caller's; matplotlib aliases win over defaults.

    ``{"c": ...}`` from the caller replaces a default ``color`` (and so on), so
    matplotlib never sees both spellings of one property.
    """
    kwargs = dict(kwargs or {})
    aliases = {
        "c": "color",
        "ls": "linestyle",
        "lw": "linewidth",
        "ec": "edgecolor",
        "fc": "facecolor",
    }
    out = dict(defaults)
    for short, long in aliases.items():
        if short in kwargs or long in kwargs:
            out.pop(short, None)
            out.pop(long, None)
    out.update(kwargs)
    return out


def compact_ticks(ax, axis="both"):
    """Tick labels as short numbers: a shared power of ten below 1e-3 or above 1e4.

    Influence values are often tiny (1e-5); matplotlib's default writes every
    digit (-0.000025), and the labels run into one another.
    """
    ax.ticklabel_format(axis=axis, style="sci", scilimits=(-3, 4), useMathText=True)
    # Steps of 1, 2 or 5 only: steps of 2.5 write a fourth digit (-0.0175).
    from matplotlib.ticker import MaxNLocator

    for name in ("x", "y") if axis == "both" else (axis,):
        getattr(ax, f"{name}axis").set_major_locator(
            MaxNLocator(nbins=6, steps=[1, 2, 5, 10])
        )
