#!/usr/bin/env bash
# The offline GPU check of nnfs-cuda, for a machine with an NVIDIA GPU and no network on which
# CuPy (cupy-cuda13x, or another CuPy wheel), numpy, pluggy and pytest are installed, and
# nothing else. From a checkout of nnfs:
#
#     bash nnfs-cuda/gpu-check.sh [--device N] [--quick]
#
# 1. installs nnfs-core, nnfs-cpu and nnfs-cuda from the checkout into a folder of its own
#    (pip install --no-deps --no-build-isolation --target; the environment is not changed),
#    with setuptools if it is 77 or newer, else with nnfs-cuda/offline_build.py;
# 2. runs python -m nnfs_cuda (ordering, the cuBLAS handle's stream, the conformance kit, the
#    article's benchmark against the cpu backend and the card's peak), at most 200 s;
# 3. runs the GPU tests: pytest -m gpu nnfs-cuda/tests/test_cuda_backend.py nnfs-cuda/tests/test_cuda_ordering.py,
#    at most 80 s;
# 4. prints one report, and writes it to the work folder.
#
# --quick: the small benchmark and a 2048³ product (for slow cards or hosts).
# Environment: PYTHON (default python3), NNFS_GPU_CHECK_DIR (the work folder; default a new
# temporary one), NNFS_GPU_CHECK_OFFLINE_BUILD=1 (use offline_build.py whatever setuptools).
# Exit status: 0 every check passed; 1 a check failed; 2 no usable GPU here, so nothing was
# verified (the install worked and the GPU tests skipped with the reason); 3 the install failed.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
device=0
command_options=()
while [ $# -gt 0 ]; do
    case $1 in
        --device) device=$2; shift 2 ;;
        --quick) command_options+=(--size small --side 2048); shift ;;
        *) echo "gpu-check.sh: unknown option $1 (use --device N, --quick)" >&2; exit 3 ;;
    esac
done
work=${NNFS_GPU_CHECK_DIR:-$(mktemp -d -t nnfs-gpu-check.XXXXXX)}
mkdir -p "$work"
site=$work/site
report=$work/gpu-check-report.txt
limit() { if command -v timeout >/dev/null; then timeout "$@"; else shift; "$@"; fi; }
progress() { echo "gpu-check.sh: $*" >&2; }

# --- 1. install -----------------------------------------------------------------------------
setuptools=$("$python" -c 'import setuptools; print(setuptools.__version__)' 2>/dev/null || true)
if [ -n "$setuptools" ] && [ "${NNFS_GPU_CHECK_OFFLINE_BUILD:-0}" != 1 ] &&
        "$python" - "$setuptools" <<'EOF'
import sys
major = sys.argv[1].split(".")[0]
sys.exit(0 if major.isdigit() and int(major) >= 77 else 1)
EOF
then
    builder="setuptools $setuptools"
    sources=("$root/nnfs-core" "$root/nnfs-cpu" "$root/nnfs-cuda")
else
    builder="nnfs-cuda/offline_build.py (setuptools here: ${setuptools:-none})"
    sources=()
    for name in nnfs-core nnfs-cpu nnfs-cuda; do
        copy=$work/build/$name
        rm -rf "$copy" && mkdir -p "$copy"
        cp -r "$root/$name/src" "$copy/src"
        rm -rf "$copy"/src/*.egg-info
        cp "$root/nnfs-cuda/offline_build.py" "$copy/"
        "$python" - "$root/$name/pyproject.toml" "$copy/pyproject.toml" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
table = ('[build-system]\nrequires = []\nbuild-backend = "offline_build"\n'
         'backend-path = ["."]\n')
text, count = re.subn(r"\[build-system\]\n(?:[^\[\n][^\n]*\n|\n)*", table + "\n", text, 1)
assert count == 1, "no [build-system] table"
open(sys.argv[2], "w", encoding="utf-8").write(text)
EOF
        sources+=("$copy")
    done
fi
progress "installing nnfs-core, nnfs-cpu, nnfs-cuda into $site with $builder"
rm -rf "$site"
if ! "$python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
        --no-build-isolation --target "$site" "${sources[@]}" >"$work/install.txt" 2>&1; then
    cat "$work/install.txt" >&2
    echo "gpu-check.sh: the install failed (above); nothing was checked" >&2
    exit 3
fi
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
versions=$("$python" - "$site" <<'EOF' 2>&1
import platform, sys
from importlib import metadata
import nnfs, nnfs_cpu, nnfs_cuda
for module in (nnfs, nnfs_cpu, nnfs_cuda):
    assert module.__file__.startswith(sys.argv[1]), f"{module.__name__} comes from {module.__file__}"
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
cupy = sorted(d.metadata["Name"] for d in metadata.distributions()
              if (d.metadata["Name"] or "").lower().startswith(("cupy", "cupy-cuda")))
print(f"Python {platform.python_version()}, pip {version('pip')}, numpy {version('numpy')}, "
      f"pluggy {version('pluggy')}, pytest {version('pytest')}, "
      f"CuPy: {', '.join(f'{n} {version(n)}' for n in cupy) or 'not installed'}")
EOF
) || { echo "$versions" >&2; echo "gpu-check.sh: the installed nnfs cannot be imported" >&2; exit 3; }

# --- 2. the GPU owner's command ---------------------------------------------------------------
progress "running python -m nnfs_cuda --device $device ${command_options[*]} (at most 200 s)"
limit 200 "$python" -m nnfs_cuda --device "$device" "${command_options[@]}" \
    >"$work/command.txt" 2>&1
command_status=$?

# --- 3. the GPU tests ---------------------------------------------------------------------------
progress "running pytest -m gpu (at most 80 s)"
(cd "$root" && limit 80 "$python" -m pytest -m gpu -q -rs -p no:cacheprovider \
    nnfs-cuda/tests/test_cuda_backend.py nnfs-cuda/tests/test_cuda_ordering.py) >"$work/pytest.txt" 2>&1
pytest_status=$?

# --- 4. the report ------------------------------------------------------------------------------
case $command_status in
    0) command_verdict="passed" ;;
    2) command_verdict="no usable GPU here" ;;
    124) command_verdict="TIMED OUT after 200 s" ;;
    *) command_verdict="FAILED (exit $command_status)" ;;
esac
case $pytest_status in
    0) pytest_verdict="passed" ;;
    5) pytest_verdict="no GPU test was collected" ;;
    124) pytest_verdict="TIMED OUT after 80 s" ;;
    *) pytest_verdict="FAILED (exit $pytest_status)" ;;
esac
if [ $command_status -eq 2 ]; then
    status=2
    verdict="NO GPU: nothing was verified on a GPU (the install worked; the GPU tests skip)"
elif [ $command_status -eq 0 ] && [ $pytest_status -eq 0 ]; then
    status=0
    verdict="PASSED: every check passed on this GPU"
else
    status=1
    verdict="FAILED: see the lines above"
fi
commit=$(git -C "$root" log -1 --format='%h %cd' --date=short 2>/dev/null || echo "not a git checkout")
gpus=$(nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not available")
{
    echo "== nnfs-cuda offline GPU check: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "checkout: $commit"
    echo "$versions"
    echo "installed with: $builder"
    echo "$gpus"
    echo
    echo "== python -m nnfs_cuda --device $device ${command_options[*]}: $command_verdict"
    cat "$work/command.txt"
    echo
    echo "== pytest -m gpu: $pytest_verdict"
    grep -E '^(SKIPPED|FAILED|ERROR|XFAIL|XPASS) ' "$work/pytest.txt" | cut -c1-300
    tail -n 1 "$work/pytest.txt"
    echo
    echo "== $verdict"
} >"$report"
cat "$report"
progress "report written to $report"
exit $status
