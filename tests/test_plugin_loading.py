"""Plugin loading never breaks nnfs: real broken plugins, installed, and nnfs still works.

Each distribution under tests/plugins/ breaks the plugin contract in one way. The fixture
``plugin_site`` installs them all (with pip, as a user would) into a directory that only the
subprocesses of these tests have on their path. With all of them installed at once, importing
nnfs, selecting cpu and ``nnfs backends`` must still work; each broken plugin is listed with its
error, and selecting it raises ``nnfs.BackendUnavailable`` carrying that error.
"""

from __future__ import annotations

import json

import pytest

import nnfs
from nnfs import backend_api as api
from conftest import run_python

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
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = result.stdout.splitlines()[2:]  # under the header and its rule
    by_name = {row.split()[0]: row for row in rows}
    assert len(by_name) == len(rows), "a reason broke a row over several lines"
    assert " yes " in by_name["cpu"] and " yes " in by_name["reference"]
    for name, (distribution, words, _) in BROKEN.items():
        row = by_name[name]
        assert row.split()[1:4] == [distribution, "0.1.0", "no"], row
        for word in words:
            assert word in row, (name, word, row)


def test_nnfs_backends_json_carries_the_errors(plugin_site):
    result = run_python("-m", "nnfs", "backends", "--json", plugins=plugin_site)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = {row["name"]: row for row in json.loads(result.stdout)["backends"]}
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
    rows = {row["name"]: row for row in json.loads(result.stdout)["backends"]}
    assert rows["cpu"]["available"] is True
    for name in [*BROKEN, "reference", "flawed"]:
        assert "not loaded: NNFS_DISABLE_PLUGIN_AUTOLOAD is set" in rows[name]["reason"], name
    table = run_python("-m", "nnfs", "backends", plugins=plugin_site, env=AUTOLOAD_OFF)
    assert table.returncode == 0 and table.stderr == ""
    bundled = {"nnfs-cpu", "nnfs-cuda", "nnfs-opencl"}
    not_bundled = [row for row in rows.values() if row["distribution"] not in bundled]
    assert table.stdout.count("not loaded: NNFS_DISABLE_PLUGIN_AUTOLOAD is set") == len(not_bundled)


@pytest.mark.parametrize("value", ["0", "", "false"])
def test_autoload_stays_on_for_values_that_say_no(plugin_site, value):
    result = run_python("-c", "import nnfs; print(nnfs.backend('reference').name)",
                        plugins=plugin_site, env={"NNFS_DISABLE_PLUGIN_AUTOLOAD": value})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "reference"
