#!/usr/bin/env python3
"""Create the benchmark's own virtual environment, ``.bench-venv/``.

The comparison peers need things the package itself must not: pyDVL 0.10 only
works with ``numpy<2`` and needs torch. They therefore live in an environment
of their own at the repository root (``.bench-venv/``, git-ignored), next to an
editable install of skinfluence, so the package keeps supporting numpy 2.

``ensure_env()`` is idempotent: a stamp file records the requirement list and
the mtime of ``pyproject.toml``; nothing is reinstalled while both match.
``reexec_in_env()`` re-runs the calling script with the environment's
interpreter (it is a no-op when already running there).

Run directly (``python3 benchmarks/setup_env.py``) to build or refresh it.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench-venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".bench-installed"

# torch is pinned to the exact release whose CPU build this project uses
# (any other version may pull a multi-GB CUDA build).
REQUIREMENTS = [
    "numpy<2",
    "torch==2.13.0",
    "pydvl[influence]==0.10.0",  # the extra brings dask, distributed, zarr
    "scikit-learn>=1.6,<1.10",
    "scipy",
    "pandas",
    "threadpoolctl>=3",
    "captum==0.9.0",  # bench_torch.py's second peer
]


def _stamp_text():
    pyproject = ROOT / "pyproject.toml"
    key = "\n".join(REQUIREMENTS) + f"\n{pyproject.stat().st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()


def in_env():
    """True when the running interpreter is the benchmark environment's."""
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def ensure_env(quiet=True):
    """Create ``.bench-venv`` and install the peers (first run only)."""
    if STAMP.exists() and STAMP.read_text().strip() == _stamp_text():
        return PYTHON
    if not PYTHON.exists():
        print(f"creating benchmark environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
    print(
        "installing benchmark peers (numpy<2, torch, pyDVL; first run only)", flush=True
    )
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("-q")
    subprocess.run([*pip, *REQUIREMENTS], cwd=ROOT, check=True)
    # Editable skinfluence last, with the peers' numpy<2 held in place.
    subprocess.run([*pip, "-e", str(ROOT), "numpy<2"], cwd=ROOT, check=True)
    STAMP.write_text(_stamp_text() + "\n")
    return PYTHON


def reexec_in_env(script, argv, env=None):
    """Replace this process by ``script argv`` run in the benchmark environment."""
    python = ensure_env()
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONHOME", None)
    args = [str(python), str(script), *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # execv does not replace the process on Windows
        sys.exit(subprocess.run(args, env=env).returncode)
    os.execve(str(python), args, env)


if __name__ == "__main__":
    ensure_env(quiet=False)
    print(f"benchmark environment ready: {PYTHON}")
