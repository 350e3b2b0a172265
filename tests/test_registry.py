"""Backend discovery and selection: names, NNFS_BACKEND, errors, in-process registration."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nnfs
from nnfs import backend_api as api
from nnfs.registry import Registry
from nnfs_cpu import CpuBackend


def spec(name="mine", api_version=api.API_VERSION, probe=None, factory=CpuBackend, dtypes=("float32",)):
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
    registry.register_backend(spec("ghost", probe=lambda: api.BackendStatus(False, "no ghost device")))
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
    with pytest.raises(nnfs.BackendUnavailable, match="claimed by .* and "):
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
    with pytest.raises(nnfs.BackendUnavailable, match="expected nnfs.backend_api.BackendSpec"):
        registry.backend("junk")


def test_backend_options_are_checked(registry):
    with pytest.raises(nnfs.NnfsTypeError, match=r"does not take the option\(s\) 'device'"):
        registry.backend("cpu", device=3)


def test_unsupported_dtype_of_a_backend(registry):
    registry.register_backend(spec("single"))
    with pytest.raises(nnfs.UnsupportedOperation, match="does not support float64; it supports float32"):
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
    registry.names()  # loaded without tracing: nothing written
    undo = registry.enable_tracing(lines.append)
    registry.names()  # found again, traced
    assert any("importing nnfs_cpu.plugin" in line for line in lines), lines
    assert any("calling nnfs_backends() of" in line and "nnfs-cpu" in line for line in lines)
    assert any("declared ['cpu']" in line for line in lines)
    undo()
    count = len(lines)
    registry.reload()
    registry.names()
    assert len(lines) == count


def test_debug_option_traces_on_stderr():
    from conftest import run_nnfs

    result = run_nnfs("--debug", "backends")
    assert result.returncode == 0
    assert "nnfs plugins: calling nnfs_backends() of cpu (nnfs-cpu)" in result.stderr
