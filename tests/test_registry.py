"""Backend discovery and selection: names, NNFS_BACKEND, errors, in-process registration."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("nnfs_cpu", reason="nnfs-cpu is not installed")

import nnfs
from nnfs import backend_api as api
from nnfs.registry import Registry
from nnfs_cpu import CpuBackend


def spec(name="mine", api_version=api.API_VERSION, probe=None, factory=CpuBackend,
         dtypes=("float32",)):
    return api.BackendSpec(name=name, factory=factory, api_version=api_version, dtypes=dtypes,
                            probe=probe, description="a test backend")


@pytest.fixture
def registry(monkeypatch):
    """A fresh registry of its own (the entry points of this environment, nothing else)."""
    monkeypatch.delenv("NNFS_BACKEND", raising=False)
    return Registry()


def test_default_is_cpu_and_name_selects(registry):
    assert registry.backend().name == "cpu"
    assert registry.backend("cpu").name == "cpu"
    assert registry.backend(" CPU ").name == "cpu"  # normalised


def test_same_request_gives_the_same_factory(registry):
    assert registry.backend("cpu") is registry.backend("cpu", "float32")
    assert registry.backend("cpu", "float64") is not registry.backend("cpu")


def test_environment_variable_selects(registry, monkeypatch):
    unregister = registry.register_backend(spec("envbackend"))
    monkeypatch.setenv("NNFS_BACKEND", "envbackend")
    assert isinstance(registry.backend().backend, CpuBackend)
    assert registry.backend().name == "cpu"  # the factory class is the CPU one
    unregister()


def test_environment_variable_naming_a_missing_backend_names_the_variable(registry, monkeypatch):
    monkeypatch.setenv("NNFS_BACKEND", "nosuch")
    with pytest.raises(nnfs.BackendNotFound, match=r"NNFS_BACKEND='nosuch' names no installed"):
        registry.backend()


@pytest.mark.parametrize("value", ["", "cp u!", "ä"])
def test_environment_variable_with_an_invalid_name_names_the_variable(registry, monkeypatch, value):
    monkeypatch.setenv("NNFS_BACKEND", value)
    with pytest.raises(nnfs.NnfsValueError, match=r"the environment variable NNFS_BACKEND "
                                                  r".* is not a valid backend name"):
        registry.backend()
    assert registry.backend("cpu").name == "cpu"  # naming a backend does not read the variable


def test_unknown_name_lists_installed_and_pip_command(registry):
    with pytest.raises(nnfs.BackendNotFound) as raised:
        registry.backend("tpu")
    message = str(raised.value)
    assert "installed: " in message and "cpu" in message
    assert "pip install nnfs-cpu" in message


def test_missing_bundled_backend_gives_its_pip_command(registry):
    installed = {info.name for info in registry.infos()}
    for name, dist in {"cuda": "nnfs-cuda", "opencl": "nnfs-opencl"}.items():
        if name not in installed:
            with pytest.raises(nnfs.BackendNotFound, match=f"pip install {dist}"):
                registry.backend(name)


@pytest.mark.parametrize("name", ["", "   ", "cpu!", "1cpu", "a" * 40, "cp u"])
def test_odd_names_are_refused(registry, name):
    with pytest.raises(nnfs.NnfsValueError, match="not a valid backend name"):
        registry.backend(name)


def test_non_string_name(registry):
    with pytest.raises(nnfs.NnfsTypeError, match="backend name must be a string"):
        registry.backend(3)


def test_unavailable_backend_says_why(registry):
    registry.register_backend(
        spec("ghost", probe=lambda: api.BackendStatus(False, "no ghost device")))
    with pytest.raises(nnfs.BackendUnavailable, match="no ghost device"):
        registry.backend("ghost")
    row = next(i for i in registry.infos() if i.name == "ghost")
    assert not row.available and row.reason == "no ghost device"
    assert registry.backend("cpu").name == "cpu"


def test_in_process_registration_and_unregistration(registry):
    unregister = registry.register_backend(spec("inproc"))
    assert "inproc" in registry.names()
    row = next(i for i in registry.infos() if i.name == "inproc")
    assert row.available and row.distribution == "(registered in process)"
    unregister()
    assert "inproc" not in registry.names()


def test_registering_the_same_plugin_twice_is_an_error(registry):
    @api.hookimpl
    def nnfs_backends():
        return [spec("twice")]

    import types

    plugin = types.SimpleNamespace(nnfs_backends=nnfs_backends)
    registry.register_plugin(plugin, "twice")
    with pytest.raises(nnfs.PluginError, match="already registered"):
        registry.register_plugin(plugin, "twice")
    assert registry.backend("twice").name == "cpu"


def test_a_plugin_without_hooks_is_refused(registry):
    with pytest.raises(nnfs.PluginError, match="no nnfs_backends function"):
        registry.register_plugin(object(), "empty")
    with pytest.raises(nnfs.NnfsTypeError):
        registry.register_plugin("nnfs_cpu.plugin")


def test_two_plugins_claiming_one_name_are_both_refused_and_named(registry):
    registry.register_backend(spec("shared"))
    registry.register_plugin(_plugin_returning([spec("shared")]), "second")
    with pytest.raises(nnfs.BackendUnavailable, match=r"claimed by .* and "):
        registry.backend("shared")
    assert registry.backend("cpu").name == "cpu"


def test_a_plugin_for_another_api_version_is_refused_with_both_versions(registry):
    registry.register_backend(spec("future", api_version=api.API_VERSION + 1))
    with pytest.raises(nnfs.BackendUnavailable) as raised:
        registry.backend("future")
    message = str(raised.value)
    assert f"API {api.API_VERSION + 1}" in message and f"API {api.API_VERSION}" in message
    assert "upgrade nnfs-core" in message
    registry.reload()
    registry.register_backend(spec("past", api_version=0))
    with pytest.raises(nnfs.BackendUnavailable) as raised:
        registry.backend("past")
    assert "written for nnfs plugin API 0" in str(raised.value)
    assert "upgrade (registered in process)" in str(raised.value)


def _plugin_returning(value=None, raises=None):
    import types

    @api.hookimpl
    def nnfs_backends():
        if raises is not None:
            raise raises
        return value

    return types.SimpleNamespace(nnfs_backends=nnfs_backends)


def test_a_hook_that_raises_is_reported_and_the_rest_keep_working(registry):
    registry.register_plugin(_plugin_returning(raises=RuntimeError("boom")), "exploding")
    assert registry.backend("cpu").name == "cpu"
    row = next(i for i in registry.infos() if i.name == "exploding")
    assert not row.available and "boom" in row.reason
    with pytest.raises(nnfs.BackendUnavailable, match="boom") as raised:
        registry.backend("exploding")
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_a_hook_of_the_wrong_signature_is_reported_on_one_line(registry):
    import types

    @api.hookimpl
    def nnfs_backends(device):
        return [spec("wrongsig")]

    registry.register_plugin(types.SimpleNamespace(nnfs_backends=nnfs_backends), "wrongsig")
    with pytest.raises(nnfs.BackendUnavailable) as raised:
        registry.backend("wrongsig")
    message = str(raised.value)
    assert "PluginValidationError" in message and "'device'" in message
    assert "\n" not in message  # pluggy's message spans lines; tables and CLI errors are one line
    row = next(i for i in registry.infos() if i.name == "wrongsig")
    assert not row.available and "\n" not in row.reason
    assert registry.backend("cpu").name == "cpu"


def test_a_hook_returning_junk_is_reported(registry):
    registry.register_plugin(_plugin_returning(["not a spec"]), "junk")
    with pytest.raises(nnfs.BackendUnavailable, match=r"expected nnfs\.backend_api\.BackendSpec"):
        registry.backend("junk")


def test_backend_options_are_checked(registry):
    with pytest.raises(nnfs.NnfsTypeError, match=r"does not take the option\(s\) 'device'"):
        registry.backend("cpu", device=3)


def test_unsupported_dtype_of_a_backend(registry):
    registry.register_backend(spec("single"))
    with pytest.raises(nnfs.UnsupportedOperation,
                       match="does not support float64; it supports float32"):
        registry.backend("single", "float64")


def test_spec_validates_itself():
    with pytest.raises(nnfs.NnfsValueError, match="not a valid backend name"):
        spec("no good")
    with pytest.raises(nnfs.NnfsTypeError, match="api_version must be an int"):
        spec(api_version="1")
    with pytest.raises(nnfs.NnfsValueError, match="dtypes must be a non-empty subset"):
        spec(dtypes=("float16",))
    with pytest.raises(nnfs.NnfsTypeError, match="factory must be callable"):
        spec(factory=None)
    assert spec("MiXeD").name == "mixed"


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_importing_nnfs_loads_no_plugin_and_touches_no_device():
    result = _python("import sys, nnfs; print(sorted(m for m in sys.modules "
                     "if m.startswith(('nnfs_', 'pyopencl', 'cupy'))))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""


def test_disabling_autoload_keeps_the_bundled_backends():
    result = _python("import nnfs; print(nnfs.backend().name)", NNFS_DISABLE_PLUGIN_AUTOLOAD="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cpu"


def test_tracing_is_opt_in_and_can_be_undone(registry):
    lines = []
    undo = registry.enable_tracing(lines.append)
    registry.names()  # found, traced
    assert any("importing nnfs_cpu.plugin" in line for line in lines), lines
    assert any("calling nnfs_backends() of" in line and "nnfs-cpu" in line for line in lines)
    assert any("declared ['cpu']" in line for line in lines)
    undo()
    count = len(lines)
    registry.reload()
    registry.names()
    assert len(lines) == count


def test_tracing_after_loading_does_not_load_again_or_orphan_factories(registry):
    """Tracing used to reload the plugins: every factory made before was then "another
    factory" to the networks made after, and their matrices could not be used together."""
    factory = registry.backend("cpu")
    x = factory.matrix(3, 2)
    lines = []
    registry.enable_tracing(lines.append)
    assert registry.backend("cpu") is factory
    assert lines == ["nnfs plugins: plugins loaded before tracing began are not loaded again; "
                     "their loading is not in this trace\n"]
    network = nnfs.inference_network(registry.backend("cpu"), 3, [nnfs.fully_connected(2, "tanh")])
    assert nnfs.transfer(network(x)).shape == (2, 2)
    network.release()
    x.release()


def test_registering_a_plugin_keeps_the_factories_already_made(registry):
    factory = registry.backend("cpu")
    unregister = registry.register_backend(spec("another"))
    assert registry.backend("cpu") is factory
    unregister()
    registry.reload()  # even a full reload: the cpu backend is declared the same way
    assert registry.backend("cpu") is factory


def test_debug_option_traces_on_stderr():
    from conftest import run_nnfs

    result = run_nnfs("--debug", "backends")
    assert result.returncode == 0
    assert "nnfs plugins: calling nnfs_backends() of cpu (nnfs-cpu)" in result.stderr


# --- plugins that break the registry's rules, registered in process -------------------------

def test_the_bundled_name_cpu_cannot_be_taken(registry):
    class Impostor(CpuBackend):
        pass

    registry.register_backend(spec("cpu", factory=Impostor))
    assert type(registry.backend("cpu").backend) is CpuBackend
    rows = [row for row in registry.infos() if row.name == "cpu"]
    assert [(row.distribution, row.available, row.refused) for row in rows] == [
        ("nnfs-cpu", True, False), ("(registered in process)", False, True)]
    assert "belongs to nnfs-cpu, bundled with nnfs" in rows[1].reason


def test_one_plugin_declaring_a_name_twice_is_told_so(registry):
    registry.register_plugin(_plugin_returning([spec("double"), spec("double")]), "doubler")
    row = next(row for row in registry.infos() if row.name == "double")
    assert row.refused and "declares the backend name 'double' 2 times" in row.reason
    assert "uninstall" not in row.reason


@pytest.mark.parametrize("value, said", [(None, "None"), ([], "an empty list")])
def test_a_hook_declaring_nothing_keeps_a_row(registry, value, said):
    registry.register_plugin(_plugin_returning(value), "quiet-one")
    row = next(row for row in registry.infos() if row.name == "quiet-one")
    assert not row.available and not row.refused
    assert row.reason == f"declares no backend here: its nnfs_backends hook returned {said}"
    with pytest.raises(nnfs.BackendUnavailable, match="is not usable: declares no backend"):
        registry.backend("quiet-one")


@pytest.mark.parametrize("value", [spec("single"), "cpu", 42])
def test_a_hook_returning_no_list_is_refused(registry, value):
    registry.register_plugin(_plugin_returning(value), "odd")
    row = next(row for row in registry.infos() if row.name == "odd")
    assert row.refused and "expected a list of nnfs.backend_api.BackendSpec records" in row.reason


def test_a_hook_whose_generator_fails_is_refused(registry):
    def generate():
        yield spec("first")
        raise RuntimeError("the second spec could not be made")

    registry.register_plugin(_plugin_returning(generate()), "generating")
    row = next(row for row in registry.infos() if row.name == "generating")
    assert row.refused and "RuntimeError: the second spec could not be made" in row.reason
    assert "first" not in registry.names()


def test_plugin_code_that_leaves_the_process_is_caught(registry):
    """SystemExit from a hook, a probe or a factory is the plugin's failure, not the end of
    the program; KeyboardInterrupt is the user's and goes through."""
    registry.register_plugin(_plugin_returning(raises=SystemExit(3)), "exiting-hook")

    def exiting_probe():
        raise SystemExit("probe leaves")

    def exiting_factory(dtype="float32"):
        raise SystemExit(5)

    registry.register_backend(spec("exiting-probe", probe=exiting_probe))
    registry.register_backend(spec("exiting-factory", factory=exiting_factory))
    rows = {row.name: row for row in registry.infos()}
    assert "SystemExit: 3" in rows["exiting-hook"].reason
    assert rows["exiting-probe"].reason == "its probe failed: SystemExit: probe leaves"
    with pytest.raises(nnfs.BackendUnavailable, match="failed to start: SystemExit: 5") as raised:
        registry.backend("exiting-factory")
    assert isinstance(raised.value.__cause__, SystemExit)

    def interrupted_probe():
        raise KeyboardInterrupt

    registry.register_backend(spec("interrupted", probe=interrupted_probe))
    with pytest.raises(KeyboardInterrupt):
        registry.backend("interrupted")


def test_plugin_code_that_hangs_is_bounded(registry, monkeypatch):
    import threading

    monkeypatch.setenv("NNFS_PLUGIN_TIMEOUT", "0.5")
    release = threading.Event()

    @api.hookimpl
    def nnfs_backends():
        release.wait(30)
        return [spec("late")]

    import types

    registry.register_plugin(types.SimpleNamespace(nnfs_backends=nnfs_backends), "hanging")
    registry.register_backend(spec("slow-probe", probe=lambda: release.wait(30)))
    try:
        rows = {row.name: row for row in registry.infos()}
        assert "did not finish within 0.5 s" in rows["hanging"].reason
        assert rows["slow-probe"].reason.startswith("its probe failed: the probe of slow-probe "
                                                    "did not finish within 0.5 s")
        assert registry.backend("cpu").name == "cpu"
    finally:
        release.set()


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_bad_time_bound_is_refused(registry, monkeypatch, value):
    monkeypatch.setenv("NNFS_PLUGIN_TIMEOUT", value)
    with pytest.raises(nnfs.NnfsValueError, match=f"NNFS_PLUGIN_TIMEOUT={value!r} must be a "
                                                  "positive number of seconds"):
        registry.backend("cpu")


def test_what_plugin_code_prints_goes_to_stderr(registry, capfd):
    import os

    def probe():
        print("probe says hello")
        os.write(1, b"and so does C\n")
        return api.BackendStatus(True, dtypes=("float32",))

    class Chatty(CpuBackend):
        def __init__(self, dtype="float32"):
            print("factory says hello")
            super().__init__(dtype)

    registry.register_backend(spec("chatty", probe=probe, factory=Chatty))
    registry.backend("chatty")
    out, err = capfd.readouterr()
    assert out == ""
    assert "probe says hello" in err and "and so does C" in err and "factory says hello" in err


def test_dtypes_of_the_device_and_of_the_factory_are_checked_when_selected(registry):
    registry.register_backend(spec("only64", dtypes=("float32", "float64"),
                                   probe=lambda: api.BackendStatus(True, dtypes=("float64",))))
    with pytest.raises(nnfs.UnsupportedOperation, match="not on this machine: its device "
                                                        "supports float64"):
        registry.backend("only64")
    assert registry.backend("only64", "float64").dtype == "float64"

    def wrong_dtype(dtype="float32"):
        return CpuBackend("float64")

    registry.register_backend(spec("liar", factory=wrong_dtype))
    with pytest.raises(nnfs.PluginError, match="asked for a float32 factory and made a float64"):
        registry.backend("liar")


def test_a_factory_class_that_declares_fewer_dtypes_than_its_spec_is_noted(registry):
    class Single(CpuBackend):
        dtypes = ("float32",)

    registry.register_backend(spec("fewer", factory=Single, dtypes=("float32", "float64")))
    row = next(row for row in registry.infos() if row.name == "fewer")
    assert row.notes == ("its BackendSpec declares the dtypes float32, float64 but its factory "
                         "Single declares float32",)
