"""PyPI's unrelated distribution ``nnfs`` and nnfs-core, in one environment, in both orders.

The other ``nnfs`` (0.5.1, a helper for the book "Neural Networks from Scratch") installs a
package ``nnfs`` and a command ``nnfs``. These tests install a stand-in with its file layout
(``nnfs/__init__.py``, ``nnfs/core.py``, ``nnfs/console/``, ``nnfs/datasets/``, the command
``nnfs = nnfs.console.nnfs:main``, ``nnfs_video_tutorial_code/``) and nnfs's own wheels into a
throwaway virtual environment, with pip, in each order, and check what the README says happens
and that its way out works. With ``NNFS_OTHER_NNFS_WHEEL`` naming the real wheel
(``pip download --no-deps nnfs==0.5.1``), they install that one instead, and with
``NNFS_RELEASE_WHEELS`` naming a folder of nnfs's wheels, those: ``.ci/release`` does both.

The throwaway environment borrows numpy and pluggy from this one (a .pth file naming a folder
of links to them), so nothing is downloaded; pip runs with ``--python`` on it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy
import pluggy
import pytest

import nnfs
from conftest import ROOT

pytestmark = pytest.mark.slow  # builds four wheels and three environments: about 25 s

OURS = ("nnfs-core", "nnfs-cpu", "nnfs-opencl", "nnfs-cuda")
#: The version of this release's distributions (the one these tests install).
VERSION = nnfs.__version__
#: The files of the other distribution 0.5.1 (its code does not matter, its paths do).
OTHER_FILES = {
    "nnfs/__init__.py": "__version__ = '0.5.1'\n\nfrom .core import init\n",
    "nnfs/core.py": "import numpy as np\n\n\ndef init(seed=0):\n    np.random.seed(seed)\n",
    "nnfs/console/__init__.py": "",
    # like the real one: no arguments print its usage; a command it does not know, nothing
    "nnfs/console/nnfs.py": "import sys\n\n\ndef main():\n    if len(sys.argv) == 1:\n"
                            "        print('Neural Networks from Scratch in Python Tool.')\n",
    "nnfs/datasets/__init__.py": "",
    "nnfs_video_tutorial_code/__init__.py": "",
}


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _other_wheel(folder: Path) -> Path:
    """A wheel of a distribution 'nnfs' 0.5.1 with the real one's files."""
    info = "nnfs-0.5.1.dist-info"
    files = {name: text.encode() for name, text in OTHER_FILES.items()}
    files[f"{info}/METADATA"] = b"Metadata-Version: 2.1\nName: nnfs\nVersion: 0.5.1\n"
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: nnfs-tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n")
    files[f"{info}/entry_points.txt"] = b"[console_scripts]\nnnfs = nnfs.console.nnfs:main\n"
    files[f"{info}/top_level.txt"] = b"nnfs\nnnfs_video_tutorial_code\n"
    record = [_record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / "nnfs-0.5.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    """nnfs's wheels, and the other distribution's, in one folder. nnfs's are built from this
    checkout, or taken from the folder ``NNFS_RELEASE_WHEELS`` names (.ci/release's)."""
    folder = tmp_path_factory.mktemp("wheels")
    release = os.environ.get("NNFS_RELEASE_WHEELS")
    if release:
        for name in OURS:
            for wheel in Path(release).glob(f"{name.replace('-', '_')}-*.whl"):
                shutil.copy(wheel, folder)
    else:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(folder),
             *(str(ROOT / name) for name in OURS)],
            capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"pip could not build nnfs's wheels:\n{result.stdout}{result.stderr}")
    real = os.environ.get("NNFS_OTHER_NNFS_WHEEL")
    if real:
        shutil.copy(real, folder)
    else:
        _other_wheel(folder)
    return folder


class Environment:
    """A throwaway virtual environment whose numpy and pluggy are this environment's."""

    def __init__(self, root: Path, wheels: Path):
        self.root = root
        self.wheels = wheels
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                       timeout=120)
        self.python = root / "bin" / "python"
        site = Path(self.run_python("-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
                    .stdout.strip())
        borrowed = root / "borrowed"
        borrowed.mkdir()
        for module in (numpy, pluggy):
            package = Path(module.__file__).parent
            for path in package.parent.glob(f"{package.name}*"):  # numpy, numpy.libs
                if not path.name.endswith((".dist-info", ".pth")):
                    (borrowed / path.name).symlink_to(path)
        (site / "borrowed.pth").write_text(f"{borrowed}\n")

    def run_python(self, *args: str) -> subprocess.CompletedProcess:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("NNFS_", "PYTHON"))}
        return subprocess.run([str(self.python), *args], capture_output=True, text=True,
                              env=env, cwd=self.root, timeout=300)

    def command(self, *args: str) -> subprocess.CompletedProcess:
        """The environment's ``nnfs`` command, whichever distribution wrote it last."""
        return self.run_python(str(self.root / "bin" / "nnfs"), *args)

    def pip(self, command: str, *args: str) -> None:
        """pip on this environment; it installs from the local wheel folder, not the index."""
        if command == "install":
            args = (*args, "--no-index", "--find-links", str(self.wheels))
        result = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(self.python),
             "--disable-pip-version-check", command, *args],
            capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"pip {command} {args}:\n{result.stdout}{result.stderr}"

    def install(self, *names: str) -> None:
        self.pip("install", "--quiet", "--no-deps", *names)

    def recover(self, message: str) -> None:
        """Run the commands that an error message gives after 'to repair: '."""
        commands = message.split("to repair: ", 1)[1].strip().split(", then ")
        for command in commands:
            words = command.split()
            assert words[0] == "pip", command
            self.pip(*words[1:])

    def works(self) -> None:
        """nnfs-core's command, its backends and the conformance kit's entry all work."""
        result = self.command("backends")
        assert result.returncode == 0 and "cpu" in result.stdout, result
        assert "warning" not in result.stderr, result.stderr
        result = self.run_python("-c", "import nnfs, nnfs_cpu, nnfs_opencl, nnfs_cuda, "
                                 "nnfs.testing; print(nnfs.backend('cpu'))")
        assert result.returncode == 0 and "cpu" in result.stdout, result.stderr


def _clash_reported(result: subprocess.CompletedProcess, who: str) -> str:
    """The clash error in ``result``'s stderr, naming ``who``, the other distribution and the
    way out; returns the line."""
    assert result.returncode != 0, result
    lines = [line for line in result.stderr.splitlines() if "needs nnfs-core" in line]
    assert lines, result.stderr
    line = lines[-1]
    assert f"{who} needs nnfs-core" in line, line
    return line


@pytest.fixture
def environment(tmp_path, wheels) -> Environment:
    return Environment(tmp_path / "env", wheels)


def test_the_other_nnfs_installed_after_nnfs_core(environment):
    environment.install(*OURS)
    environment.works()
    environment.install("nnfs==0.5.1")
    # its files replaced ours: `import nnfs` is the other package, and so is the command
    result = environment.run_python("-c", "import nnfs; print(nnfs.__version__, "
                                    "hasattr(nnfs, 'backend'))")
    assert result.stdout.split() == ["0.5.1", "False"], result
    result = environment.command("backends")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result
    # everywhere code of nnfs still runs, the clash is named with the way out
    expected = ("the unrelated distribution 'nnfs' 0.5.1 (a helper for the book 'Neural "
                "Networks from Scratch') replaced nnfs-core's files")
    for module, who in [("nnfs_cpu", "nnfs-cpu"), ("nnfs_opencl", "nnfs-opencl"),
                        ("nnfs_cuda", "nnfs-cuda"), ("nnfs_cpu.plugin", "nnfs-cpu"),
                        ("nnfs_opencl.plugin", "nnfs-opencl"), ("nnfs_cuda.plugin", "nnfs-cuda"),
                        ("nnfs.testing", "nnfs.testing")]:
        result = environment.run_python("-c", f"import {module}")
        line = _clash_reported(result, who)
        assert "NnfsCoreReplaced" in line and expected in line, line
    result = environment.run_python("-m", "nnfs_cuda")
    assert "NnfsCoreReplaced: nnfs-cuda needs nnfs-core" in result.stderr, result.stderr
    result = environment.run_python("-m", "nnfs", "backends")
    line = _clash_reported(result, "python -m nnfs")
    assert result.stderr.strip() == line and result.returncode == 1, result.stderr  # one line
    assert line.endswith("to repair: pip uninstall -y nnfs, then pip install "
                         f"--force-reinstall --no-deps nnfs-core=={VERSION}"), line
    environment.recover(line)
    environment.works()


def test_nnfs_core_installed_after_the_other_nnfs(environment):
    environment.install("nnfs==0.5.1")
    environment.install(*OURS)
    # ours replaced its files: nnfs works, and `nnfs backends` warns about the other one
    result = environment.command("backends")
    assert result.returncode == 0 and "cpu" in result.stdout, result
    assert "warning: the unrelated distribution 'nnfs' 0.5.1" in result.stderr, result.stderr
    assert "pip uninstall -y nnfs, then pip install --force-reinstall --no-deps " \
           f"nnfs-core=={VERSION}" in result.stderr, result.stderr
    result = environment.run_python("-c", "import nnfs_cpu, nnfs; print(nnfs.backend('cpu'))")
    assert result.returncode == 0, result.stderr
    # uninstalling the other one alone removes nnfs/__init__.py, which its RECORD lists
    environment.pip("uninstall", "--yes", "nnfs")
    result = environment.run_python("-c", "import nnfs_cpu")
    line = _clash_reported(result, "nnfs-cpu")
    assert "is not nnfs-core's package 'nnfs'" in line, line
    assert line.endswith(f"to repair: pip install --force-reinstall --no-deps nnfs-core=={VERSION}")
    environment.recover(line)
    environment.works()


def test_the_warning_gives_the_same_way_out(environment):
    """The README's way out, from the warning of `nnfs backends` (the order above), works."""
    environment.install("nnfs==0.5.1")
    environment.install(*OURS)
    warning = environment.command("backends").stderr
    commands = warning.split("nnfs-core's files: ", 1)[1].strip()
    environment.recover(f"to repair: {commands}")
    environment.works()
