"""Plugin loading never breaks nnfs: real broken plugins, installed, and nnfs still works.

Each distribution under tests/plugins/ breaks the plugin contract in one way. The fixture
``plugin_site`` installs them all (with pip, as a user would) into a directory that only the
subprocesses of these tests have on their path. With all of them installed at once, importing
nnfs, selecting cpu and ``nnfs backends`` must still work; each broken plugin is listed with its
error, and selecting it raises ``nnfs.BackendUnavailable`` carrying that error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nnfs
from conftest import TEST_PLUGINS, run_python
from nnfs import backend_api as api

API = api.API_VERSION

#: backend name: (distribution, what its reason must say, type of the original error)
BROKEN = {
    "broken-import": ("nnfs-broken-import",
                      ("importing nnfs_broken_import failed", "ModuleNotFoundError",
                       "nnfs_missing_dependency"),
                      "ModuleNotFoundError"),
    "hook-raises": ("nnfs-hook-raises",
                    ("its nnfs_backends hook failed",
                     "RuntimeError: hook-raises could not read its device list"),
                    "RuntimeError"),
    "wrong-signature": ("nnfs-wrong-signature",
                        ("PluginValidationError", "nnfs_backends(device)", "'device'"),
                        "PluginValidationError"),
    "no-hook": ("nnfs-no-hook",
                ("nnfs_no_hook has no nnfs_backends function marked @nnfs.backend_api.hookimpl",),
                "PluginError"),
    "twin": ("nnfs-twin-a",
             ("the backend name 'twin' is claimed by nnfs-twin-a 0.1.0", "and nnfs-twin-b 0.1.0",
              "uninstall one of them"),
             "PluginError"),
    "future-api": ("nnfs-future-api",
                   (f"nnfs-future-api 0.1.0 was written for nnfs plugin API {API + 1}",
                    f"speaks API {API}", "upgrade nnfs-core (pip install -U nnfs-core)"),
                   "PluginError"),
    "old-api": ("nnfs-old-api",
                ("nnfs-old-api 0.1.0 was written for nnfs plugin API 1", f"speaks API {API}",
                 "upgrade nnfs-old-api (pip install -U nnfs-old-api)",
                 "the migration note docs/backend-api-2.md"),
                "PluginError"),
}

#: The modules of every installed test plugin, none of which may be imported when autoload is off.
PLUGIN_MODULES = ("nnfs_broken_import", "nnfs_hook_raises", "nnfs_wrong_signature", "nnfs_no_hook",
                  "nnfs_twin_a", "nnfs_twin_b", "nnfs_future_api", "nnfs_old_api", "nnfs_flawed",
                  "nnfs_reference")


def test_the_plugins_are_installed_as_distributions(plugin_site):
    # the premise of this file: importlib.metadata sees them as installed, with their entry points
    result = run_python("-c", "import json; from importlib import metadata; print(json.dumps("
                        "[ep.dist.name for ep in metadata.entry_points(group='nnfs')]))",
                        plugins=plugin_site)
    assert result.returncode == 0, result.stderr
    listed = set(json.loads(result.stdout))
    expected = {dist for dist, _, _ in BROKEN.values()} | {"nnfs-twin-b", "nnfs-flawed-backends",
                                                           "nnfs-reference-backend", "nnfs-cpu"}
    assert expected <= listed


def test_importing_nnfs_is_silent(plugin_site):
    result = run_python("-c", "import nnfs", plugins=plugin_site)
    assert result.returncode == 0
    assert result.stdout == "" and result.stderr == ""


def test_the_other_backends_keep_working(plugin_site):
    code = ("import nnfs\n"
            "nnfs.backends()\n"
            "print(nnfs.backend('cpu').name, nnfs.backend().name,\n"
            "      nnfs.backend('reference').name)\n")
    result = run_python("-c", code, plugins=plugin_site)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "cpu cpu reference\n"
    assert result.stderr == ""  # no traceback, no warning, for any of the broken plugins


def test_selecting_a_broken_plugin_raises_backend_unavailable_with_its_error(plugin_site):
    code = (
        "import json, nnfs\n"
        "found = {}\n"
        f"for name in {sorted(BROKEN)!r}:\n"
        "    try:\n"
        "        nnfs.backend(name)\n"
        "        found[name] = None\n"
        "    except Exception as error:\n"
        "        cause = error.__cause__\n"
        "        found[name] = [type(error).__name__, str(error),\n"
        "                       type(cause).__name__ if cause is not None else None]\n"
        "    found[name + ' then cpu'] = nnfs.backend('cpu').name\n"
        "print(json.dumps(found))\n")
    result = run_python("-c", code, plugins=plugin_site)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    for name, (distribution, words, cause) in BROKEN.items():
        assert found[name] is not None, f"nnfs.backend({name!r}) did not raise"
        kind, message, cause_kind = found[name]
        assert kind == "BackendUnavailable", (name, kind, message)
        assert message.startswith(f"the {name} backend ({distribution} 0.1.0) was refused: ")
        for word in words:
            assert word in message, (name, word, message)
        assert cause_kind == cause, f"{name}: raised from {cause_kind}, expected {cause}"
        assert found[name + " then cpu"] == "cpu"


def test_nnfs_backends_lists_each_broken_plugin_with_its_error(plugin_site):
    result = run_python("-m", "nnfs", "backends", plugins=plugin_site)
    assert result.returncode == 1, result.stderr  # plugins were refused
    refused = len(BROKEN) + 1  # twin is refused twice, once per distribution
    assert result.stderr.startswith(f"nnfs backends: {refused} plugins were refused: ")
    assert result.stderr.count("\n") == 1
    table = result.stdout.split("\n\n")[0]  # the default and the options follow a blank line
    rows = table.splitlines()[2:]  # under the header and its rule
    by_name = {row.split()[0]: row for row in rows if row.split()[1] != "nnfs-twin-b"}
    assert len(by_name) == len(rows) - 1, "a reason broke a row over several lines"
    assert any(row.split()[:2] == ["twin", "nnfs-twin-b"] for row in rows)
    assert " yes " in by_name["cpu"] and " yes " in by_name["reference"]
    for name, (distribution, words, _) in BROKEN.items():
        row = by_name[name]
        assert row.split()[1:4] == [distribution, "0.1.0", "no"], row
        for word in words:
            assert word in row, (name, word, row)


def test_nnfs_backends_json_carries_the_errors(plugin_site):
    result = run_python("-m", "nnfs", "backends", "--json", plugins=plugin_site)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("nnfs backends: ")
    rows = {row["name"]: row for row in json.loads(result.stdout)["backends"]
            if row["distribution"] != "nnfs-twin-b"}
    assert all(row["refused"] for name, row in rows.items() if name in BROKEN)
    assert rows["cpu"]["available"] is True and rows["reference"]["available"] is True
    for name, (distribution, words, _) in BROKEN.items():
        row = rows[name]
        assert row["distribution"] == distribution and row["available"] is False
        for word in words:
            assert word in row["reason"], (name, word, row["reason"])


def test_the_nnfs_command_reports_a_broken_backend_in_one_line(plugin_site):
    result = run_python("-m", "nnfs", "demo", "--backend", "wrong-signature", plugins=plugin_site)
    assert result.returncode == 1
    assert result.stderr.startswith("nnfs demo: error: the wrong-signature backend "
                                    "(nnfs-wrong-signature 0.1.0) was refused: "
                                    "PluginValidationError")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


AUTOLOAD_OFF = {"NNFS_DISABLE_PLUGIN_AUTOLOAD": "1"}


def test_disabling_autoload_loads_none_of_them(plugin_site):
    code = (
        "import json, sys, nnfs\n"
        "rows = {i.name: [i.available, i.reason] for i in nnfs.backends()}\n"
        "try:\n"
        "    nnfs.backend('reference')\n"
        "    selected = None\n"
        "except nnfs.BackendUnavailable as error:\n"
        "    selected = str(error)\n"
        f"loaded = [m for m in sys.modules if m.split('.')[0] in {PLUGIN_MODULES!r}]\n"
        "print(json.dumps({'rows': rows, 'loaded': loaded, 'cpu': nnfs.backend('cpu').name,\n"
        "                  'selected': selected}))\n")
    result = run_python("-c", code, plugins=plugin_site, env=AUTOLOAD_OFF)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    found = json.loads(result.stdout)
    assert found["loaded"] == [], "modules of plugins were imported with autoload off"
    assert found["cpu"] == "cpu" and found["rows"]["cpu"] == [True, ""]
    # the rows are named after the entry points: the plugins were not asked for their backends
    third_party = set(BROKEN) | {"reference", "flawed"}
    assert third_party <= set(found["rows"])
    for name in third_party:
        available, reason = found["rows"][name]
        assert not available and reason.startswith(
            "PluginError: not loaded: NNFS_DISABLE_PLUGIN_AUTOLOAD is set"), (name, reason)
    assert "not loaded: NNFS_DISABLE_PLUGIN_AUTOLOAD is set" in found["selected"]


def test_nnfs_backends_with_autoload_disabled_lists_them_as_not_loaded(plugin_site):
    result = run_python("-m", "nnfs", "backends", "--json", plugins=plugin_site, env=AUTOLOAD_OFF)
    assert result.returncode == 0 and result.stderr == ""
    listed = json.loads(result.stdout)["backends"]
    rows = {row["name"]: row for row in listed}
    assert rows["cpu"]["available"] is True
    for name in [*BROKEN, "reference", "flawed"]:
        assert "not loaded: NNFS_DISABLE_PLUGIN_AUTOLOAD is set" in rows[name]["reason"], name
        assert rows[name]["refused"] is False  # left out on purpose: no failure to report
    table = run_python("-m", "nnfs", "backends", plugins=plugin_site, env=AUTOLOAD_OFF)
    assert table.returncode == 0 and table.stderr == ""
    bundled = {"nnfs-cpu", "nnfs-cuda", "nnfs-opencl"}
    not_bundled = [row for row in listed if row["distribution"] not in bundled]
    assert table.stdout.count("not loaded: NNFS_DISABLE_PLUGIN_AUTOLOAD is set") == len(not_bundled)


@pytest.mark.parametrize("value", ["0", "", "false"])
def test_autoload_stays_on_for_values_that_say_no(plugin_site, value):
    result = run_python("-c", "import nnfs; print(nnfs.backend('reference').name)",
                        plugins=plugin_site, env={"NNFS_DISABLE_PLUGIN_AUTOLOAD": value})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "reference"


# --- hostile plugins: each hurts only itself ----------------------------------------------------

#: Distributions under tests/plugins/hostile/, each doing one thing a broken plugin does to
#: the process it is loaded into (see their docstrings). Kept apart from the others: a plugin
#: whose import hangs makes every full listing wait for the time bound.
HOSTILE = TEST_PLUGINS / "hostile"
#: The time bound of plugin code in these tests (seconds), so that the hangs end soon.
BOUND = {"NNFS_PLUGIN_TIMEOUT": "3"}


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory) -> Path:
    """The hostile plugins, installed as real distributions where only subprocesses see them."""
    root = tmp_path_factory.mktemp("hostile")
    sources = []
    for source in sorted(HOSTILE.iterdir()):
        copy = root / "src" / source.name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                     "__pycache__"))
        sources.append(str(copy))
    site = root / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-index", "--no-build-isolation", "--no-deps", "--target", str(site), *sources],
        capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"pip could not install the hostile plugins:\n{result.stdout}{result.stderr}")
    return site


def hostile(*args, env=None, timeout=120):
    """``python args`` with the hostile plugins installed and the time bound set."""
    return lambda site: run_python(*args, plugins=site, env={**BOUND, **(env or {})},
                                   timeout=timeout)


def test_selecting_cpu_imports_no_other_plugin(hostile_site):
    """nnfs.backend('cpu') imports only what declares cpu: the plugin whose import hangs is
    never imported, so nothing waits (with no bound at all: the default of 30 s would show)."""
    code = ("import sys, nnfs\n"
            "factory = nnfs.backend('cpu')\n"
            "print(type(factory.backend).__module__,"
            " sorted(m for m in sys.modules if m.startswith('nnfs_hostile')))\n")
    result = run_python("-c", code, plugins=hostile_site, timeout=25)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 1)[0] == "nnfs_cpu.backend"  # the bundled one, not Impostor
    assert result.stdout.split(" ", 1)[1].strip() == "['nnfs_hostile_claims_cpu']"
    assert result.stderr == ""


def test_train_and_predict_on_the_cpu_are_untouched(hostile_site, tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i % 3},{i % 5},{i % 2}\n" for i in range(40)))
    model = tmp_path / "m.npz"
    train = hostile("-m", "nnfs", "train", "--backend", "cpu", "--data", str(csv), "--epochs",
                    "1", "--layers", "4:tanh,2:softmax", "--save", str(model), "--quiet",
                    timeout=60)(hostile_site)
    assert train.returncode == 0, train.stderr
    assert train.stdout.startswith("test accuracy: ") and train.stderr == ""
    predict = hostile("-m", "nnfs", "predict", "--model", str(model), "--data", str(csv),
                      timeout=60)(hostile_site)
    assert predict.returncode == 0, predict.stderr
    assert predict.stdout.splitlines()[0] == "label" and len(predict.stdout.split()) == 41


def test_what_a_plugin_prints_never_reaches_standard_output(hostile_site, tmp_path):
    """The noisy plugin prints at import, in its hook, probe and factory, from Python and from
    the descriptor: nnfs predict's CSV and nnfs backends --json stay exactly theirs, and the
    noise goes to stderr."""
    csv = tmp_path / "d.csv"
    csv.write_text("1,2\n3,4\n")
    model = tmp_path / "m.npz"
    with nnfs.inference_network(nnfs.backend("cpu"), 2, [nnfs.fully_connected(2, "softmax")],
                                seed=0) as network:
        nnfs.save(network, model)
    predict = hostile("-m", "nnfs", "predict", "--model", str(model), "--data", str(csv),
                      "--backend", "noisy", "--label-column", "none")(hostile_site)
    assert predict.returncode == 0, predict.stderr
    assert predict.stdout.splitlines()[0] == "label" and len(predict.stdout.split()) == 3
    assert "noisy" not in predict.stdout
    for said in ("noisy: imported", "said on descriptor 1", "noisy: declaring",
                 "noisy: probing", "noisy: making a factory"):
        assert said in predict.stderr, said
    listing = hostile("-m", "nnfs", "backends", "--json")(hostile_site)
    rows = json.loads(listing.stdout)["backends"]  # parses: nothing else on stdout
    assert any(row["name"] == "noisy" and row["available"] for row in rows)


def _rows(hostile_site) -> tuple[subprocess.CompletedProcess, dict[tuple[str, str], dict]]:
    result = hostile("-m", "nnfs", "backends", "--json", timeout=120)(hostile_site)
    listed = json.loads(result.stdout)["backends"]
    rows = {(row["name"], row["distribution"]): row for row in listed}
    return result, rows


@pytest.fixture(scope="module")
def listing(hostile_site):
    return _rows(hostile_site)


def row_of(rows, name: str, distribution: str) -> dict:
    return rows[name, f"nnfs-hostile-{distribution}"]


def test_nnfs_backends_lists_every_hostile_plugin_and_exits_1(listing):
    result, rows = listing
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("nnfs backends: ")
    assert "Traceback" not in result.stderr
    assert rows["cpu", "nnfs-cpu"]["available"] is True


@pytest.mark.parametrize("name, distribution, words", [
    ("hangs-at-import", "hangs-at-import", "did not finish within 3 s"),
    ("hook-hangs", "hook-hangs", "did not finish within 3 s"),
    ("leaves-at-import", "leaves", "SystemExit: leaves-at-import: the hook leaves"),
    ("junk", "junk", "returned BackendSpec(name='junk'"),
    ("cpu", "claims-cpu", "the backend name 'cpu' belongs to nnfs-cpu, bundled with nnfs"),
    ("double", "declares-twice", "declares the backend name 'double' 2 times"),
])
def test_each_refused_plugin_has_a_row_with_its_reason(listing, name, distribution, words):
    row = row_of(listing[1], name, distribution)
    assert row["available"] is False and row["refused"] is True
    assert words in row["reason"], row["reason"]
    assert "uninstall one of" not in row["reason"]


@pytest.mark.parametrize("name, distribution, words", [
    ("probe-exits", "exits", "its probe failed: SystemExit: 3"),
    ("probe-hangs", "hangs-later", "its probe failed: the probe of probe-hangs did not finish"),
    ("returns-none", "returns-none", "declares no backend here: its nnfs_backends hook returned "
                                     "None"),
])
def test_a_backend_that_cannot_be_used_still_has_its_row(listing, name, distribution, words):
    row = row_of(listing[1], name, distribution)
    assert row["available"] is False and row["refused"] is False
    assert words in row["reason"], row["reason"]


def test_dtypes_that_disagree_are_noted(listing):
    result, rows = listing
    assert row_of(rows, "mixed-dtypes", "dtypes-disagree")["notes"] == [
        "its BackendSpec declares the dtypes float32, float64 but its factory SingleBackend "
        "declares float32"]
    assert row_of(rows, "probe-says-more", "dtypes-disagree")["notes"] == [
        "its probe reports the dtypes float32, float64, but its BackendSpec declares float32"]
    assert row_of(rows, "device-float64", "dtypes-disagree")["notes"] == []  # a subset: fine
    assert "warning: mixed-dtypes (nnfs-hostile-dtypes-disagree): its BackendSpec declares" \
        in result.stderr


def test_selecting_a_hostile_backend_is_an_error_the_process_survives(hostile_site):
    code = (
        "import json, nnfs\n"
        "found = {}\n"
        "for name, dtype in [('factory-exits', 'float32'), ('probe-exits', 'float32'),\n"
        "                    ('device-float64', 'float32'), ('mixed-dtypes', 'float64'),\n"
        "                    ('double', 'float32'), ('cpu', 'float64')]:\n"
        "    try:\n"
        "        factory = nnfs.backend(name, dtype)\n"
        "        found[name] = ['made', type(factory.backend).__module__, factory.dtype]\n"
        "    except nnfs.NnfsError as error:\n"
        "        cause = error.__cause__\n"
        "        found[name] = [type(error).__name__, str(error),\n"
        "                       None if cause is None else type(cause).__name__]\n"
        "print(json.dumps(found))\n")
    result = hostile("-c", code)(hostile_site)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["factory-exits"][0] == "BackendUnavailable"
    assert "failed to start: SystemExit: factory-exits: no device" in found["factory-exits"][1]
    assert found["factory-exits"][2] == "SystemExit"
    assert found["probe-exits"][:2] == ["BackendUnavailable", "the probe-exits backend is "
                                        "installed but cannot be used here: its probe failed: "
                                        "SystemExit: 3"]
    assert found["device-float64"][0] == "UnsupportedOperation"
    assert "not on this machine: its device supports float64" in found["device-float64"][1]
    assert found["mixed-dtypes"][0] in ("UnsupportedOperation", "PluginError")
    assert found["double"][0] == "BackendUnavailable"
    assert found["cpu"] == ["made", "nnfs_cpu.backend", "float64"]


@pytest.mark.parametrize("leave, status, words", [
    ("import", 1, "importing nnfs_hostile_leaves failed: SystemExit: 4"),
    ("interrupt", 130, "nnfs backends: interrupted"),
])
def test_leaving_at_import_is_caught_but_ctrl_c_goes_through(hostile_site, leave, status, words):
    """A plugin's SystemExit is its failure, recorded like any other; a KeyboardInterrupt is
    the user's, and ends the command as Ctrl-C does."""
    result = hostile("-m", "nnfs", "backends", env={"NNFS_TEST_LEAVE": leave})(hostile_site)
    assert result.returncode == status, result.stdout + result.stderr
    assert words in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
