#!/usr/bin/env python3
"""CI: the core test suite on the oldest dependency versions pyproject.toml allows.

``python3 .ci/oldest.py [pytest arguments]`` creates ``.venv-oldest`` at the
repository root (standard library only: ``venv`` and pip), installs skinfluence
in editable mode with pytest, pytest-xdist, statsmodels, imbalanced-learn and
matplotlib, every version pinned by ``.ci/oldest-constraints.txt`` and taken
from wheels only, and runs ``pytest -n 2`` on the core subset:

- the whole suite but ``tests/test_examples.py`` (the example scripts, end to
  end: about half the run time, and they exercise nothing the unit tests do
  not) and the tests that need torch or dask, which are not installed here
  (``test_torch.py``, ``test_applications_backends.py``, ``test_dask.py`` and
  the README blocks, one of which imports torch);
- tests marked slow stay opt-in (``--runslow``), as everywhere.

The environment is reused while its stamp matches (the constraints, the
requirements, pyproject.toml and the interpreter); otherwise it is rebuilt from
scratch. Exits with pytest's status, and 1 where pytest collected no tests.
"""

import configparser
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-oldest"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
CONSTRAINTS = ROOT / ".ci" / "oldest-constraints.txt"
STAMP = VENV / ".installed-oldest"

# Installed next to the package; versions come from the constraints file.
REQUIREMENTS = [
    "pytest",
    "pytest-xdist",
    "statsmodels",
    "imbalanced-learn",
    "matplotlib",
]

# The pinned numpy, scipy and pandas have wheels for CPython 3.10 and 3.11 only.
PYTHONS = ("3.11", "3.10")

SUBSET = [
    "--ignore=tests/test_examples.py",
    "--ignore=tests/backends/test_torch.py",
    "--ignore=tests/applications/test_applications_backends.py",
    "--ignore=tests/backends/test_dask.py",
    "--deselect=tests/test_docs.py::test_other_readme_examples_run",
]


def _interpreter():
    """A Python the pinned wheels exist for: this one, else one on PATH."""
    if "{}.{}".format(*sys.version_info[:2]) in PYTHONS:
        return sys.executable
    for version in PYTHONS:
        found = shutil.which(f"python{version}")
        if found:
            return found
    sys.exit(
        f"oldest.py: needs Python {' or '.join(PYTHONS)} (the oldest numpy, "
        f"scipy and pandas have no wheels for Python {sys.version.split()[0]})"
    )


def _stamp(python):
    digest = hashlib.sha256()
    for path in (CONSTRAINTS, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    digest.update(" ".join(REQUIREMENTS).encode())
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    digest.update(version.encode())
    return digest.hexdigest()


def _ensure_env():
    python = _interpreter()
    stamp = _stamp(python)
    if STAMP.exists() and STAMP.read_text().strip() == stamp and PYTHON.exists():
        return
    print(f"creating {VENV.name} with the oldest supported versions", flush=True)
    if VENV.exists():
        shutil.rmtree(VENV)
    subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [
            str(PYTHON),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-compile",
            "--only-binary=:all:",
            "-c",
            str(CONSTRAINTS),
            "-e",
            str(ROOT),
            *REQUIREMENTS,
        ],
        cwd=ROOT,
        check=True,
    )
    STAMP.write_text(stamp + "\n")


def _warning_filters():
    """setup.cfg's filterwarnings, spelled for the installed numpy.

    numpy.exceptions exists from numpy 1.25; before, its warnings live in the
    numpy namespace (numpy.RankWarning), which pytest must be told instead.
    """
    has_exceptions = subprocess.run(
        [str(PYTHON), "-c", "import numpy.exceptions"], capture_output=True
    )
    if has_exceptions.returncode == 0:
        return []
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config.get("tool:pytest", "filterwarnings", fallback="").splitlines()
    lines = [line.strip().replace("numpy.exceptions.", "numpy.") for line in lines]
    lines = [line for line in lines if line]
    return ["-o", "filterwarnings=" + "\n".join(lines)] if lines else []


def main(argv):
    _ensure_env()
    # Two worker processes, one BLAS thread each (as dev.py test).
    env = {
        **os.environ,
        **{
            k: "1"
            for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        },
    }
    workers = [] if any(a.startswith("-n") for a in argv) else ["-n", "2"]
    command = [
        str(PYTHON),
        "-m",
        "pytest",
        *workers,
        *_warning_filters(),
        *SUBSET,
        *argv,
    ]
    returncode = subprocess.run(command, cwd=ROOT, env=env).returncode
    if returncode == 5:
        print("oldest.py: pytest collected no tests", file=sys.stderr)
        return 1
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
