#!/usr/bin/env python3
"""Zero-setup entry point: ``python3 dev.py demo`` and ``python3 dev.py test``.

Creates ``.venv`` next to this file on first use (only a Python 3 interpreter is
needed), installs skinfluence in editable mode with the extras the command needs,
and runs the command inside that environment. ``docs`` uses its own environment,
``.docs-venv``. pip installs under ``constraints/ci.txt`` (exact versions of this
project's test environment, such as the CPU build of torch).

Commands
--------
demo    explain a misclassified digit and rank training rows by self-influence
test    run the whole test suite (extra arguments go to pytest)
docs    build the HTML documentation into docs/_build/html (warnings are errors;
        ``--all-examples`` also executes the slow gallery examples; other
        arguments go to sphinx-build)
bench   run a benchmark script from benchmarks/ (e.g. ``bench bench_exact.py``)
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
DOCS_VENV = ROOT / ".docs-venv"
CONSTRAINTS = ROOT / "constraints" / "ci.txt"


def _bin(env):
    return env / ("Scripts" if os.name == "nt" else "bin")


def _python(env):
    return _bin(env) / ("python.exe" if os.name == "nt" else "python")


BIN = _bin(VENV)
PYTHON = _python(VENV)


def _ensure_env(extras, env=VENV):
    """Create the virtual environment and install the package with ``extras``."""
    stamp = env / f".installed-{'-'.join(sorted(extras)) or 'core'}"
    inputs = [ROOT / "pyproject.toml", CONSTRAINTS]
    newest = max(p.stat().st_mtime for p in inputs if p.exists())
    if stamp.exists() and stamp.stat().st_mtime >= newest:
        return
    python = _python(env)
    if not python.exists():
        print(f"creating virtual environment in {env}", flush=True)
        venv.EnvBuilder(with_pip=True).create(env)
    spec = f".[{','.join(sorted(extras))}]" if extras else "."
    print(f"installing skinfluence{spec[1:]} (first run only)", flush=True)
    cmd = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*cmd, "-c", str(CONSTRAINTS), "-e", spec], cwd=ROOT, check=True)
    stamp.touch()


def _docs(rest):
    """Build the HTML docs with warnings as errors; see docs/conf.py."""
    env = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                            "MKL_NUM_THREADS")}
    env["MPLBACKEND"] = "Agg"
    extras = {"docs"}
    if "--all-examples" in rest:  # the slow examples too; the CNN needs torch
        rest = [a for a in rest if a != "--all-examples"]
        env["SKINFLUENCE_DOCS_ALL_EXAMPLES"] = "1"
        extras.add("torch")
    _ensure_env(extras, env=DOCS_VENV)
    out = ROOT / "docs" / "_build" / "html"
    return _run([str(_python(DOCS_VENV)), "-m", "sphinx", "-W", "--keep-going",
                 "-b", "html", "-d", str(out.parent / "doctrees"), *rest,
                 str(ROOT / "docs"), str(out)], env=env)


def _run(args, env=None):
    return subprocess.run(args, cwd=ROOT, env={**os.environ, **(env or {})}).returncode


def main(argv):
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "demo":
        _ensure_env(set())
        return _run([str(BIN / "skinfluence"), "demo", *rest])
    if command == "test":
        _ensure_env({"test", "plot", "torch", "dask"})
        # Two worker processes, one BLAS thread each: BLAS threads spinning in
        # two processes on two cores would slow every test many times over.
        threads = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                    "MKL_NUM_THREADS")}
        workers = ["-n", "2"] if not any(a.startswith("-n") for a in rest) else []
        return _run([str(PYTHON), "-m", "pytest", *workers, *rest], env=threads)
    if command == "docs":
        return _docs(rest)
    if command == "bench":
        _ensure_env({"bench", "test"})
        return _run([str(PYTHON), *(str(ROOT / "benchmarks" / a) for a in rest[:1]),
                     *rest[1:]])
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
