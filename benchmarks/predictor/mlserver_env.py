"""MLServer in its own virtualenv, created on first use (its pins clash with ours).

``uvloop<0.22`` because newer uvloop kills MLServer's workers (MLServer issue
#2286). scikit-learn is pinned to the version of this environment so both
servers unpickle the very same joblib file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import sklearn

MLSERVER = "mlserver==1.7.1"
MLSERVER_SKLEARN = "mlserver-sklearn==1.7.1"


def venv_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "modeldeploy" / "bench" / "mlserver-venv"


def ensure() -> Path:
    """Return the ``mlserver`` executable, installing the venv when missing."""
    venv = venv_dir()
    exe = venv / "bin" / "mlserver"
    stamp = venv / f".installed-sklearn-{sklearn.__version__}"
    if exe.exists() and stamp.exists():
        return exe
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    print(f"[bench] installing {MLSERVER} into {venv} (once)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         MLSERVER, MLSERVER_SKLEARN, "uvloop<0.22", f"scikit-learn=={sklearn.__version__}"],
        check=True,
    )  # fmt: skip
    stamp.touch()
    return exe


if __name__ == "__main__":
    print(ensure())
