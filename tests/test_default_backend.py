"""Which backend a program gets when it names none, and backend options given as text
(issue #20): ``NNFS_BACKEND`` if set; otherwise the available backend of the highest priority
its plugin declares (cuda, then opencl on a GPU, then cpu), cpu among equals; options as
``NAME:key=value,...`` everywhere a backend is named, checked against what it declares."""

from __future__ import annotations

import itertools
import json

import pytest

import nnfs
from conftest import run_nnfs, run_python
from nnfs import backend_api as api
from nnfs.registry import Registry
from nnfs_cpu import CpuBackend, plugin as cpu_plugin

#: What each bundled backend can be on a machine, for the combinations below.
STATES = {
    "cpu": ("absent", "available"),
    "cuda": ("absent", "no gpu", "available"),
    "opencl": ("absent", "no driver", "cpu device", "gpu"),
}


def _spec(name: str, state: str) -> api.BackendSpec:
    """A stand-in for a bundled backend as its plugin declares it, on a machine where it is
    ``state``; every factory is the CPU backend (only the choice is tested)."""
    priorities = {"cpu": cpu_plugin.PRIORITY, "cuda": 30, "opencl": 20}

    def probe() -> api.BackendStatus:
        if state in ("no gpu", "no driver"):
            return api.BackendStatus(False, f"{name}: {state}")
        if state == "cpu device":
            return api.BackendStatus(True, priority=5)
        return api.BackendStatus(True)

    return api.BackendSpec(name=name, factory=CpuBackend, api_version=api.API_VERSION,
                           dtypes=("float32",), probe=probe, priority=priorities[name])


def _registry(monkeypatch, machine: dict[str, str]) -> Registry:
    from nnfs import registry as registry_module

    registry = Registry()
    monkeypatch.setattr(registry, "_entry_points", list)  # nothing installed but these, which
    monkeypatch.setattr(registry_module, "BUNDLED", {})  # stand in for the bundled ones
    for name, state in machine.items():
        if state != "absent":
            registry.register_backend(_spec(name, state))
    return registry


def _expected(machine: dict[str, str]) -> str | None:
    if machine["cuda"] == "available":
        return "cuda"
    if machine["opencl"] == "gpu":
        return "opencl"
    if machine["cpu"] == "available":
        return "cpu"
    if machine["opencl"] == "cpu device":
        return "opencl"
    return None


MACHINES = [dict(zip(STATES, states, strict=True))
            for states in itertools.product(*STATES.values())]


@pytest.mark.parametrize("machine", MACHINES,
                         ids=lambda m: ",".join(f"{k}={v.replace(' ', '-')}" for k, v in m.items()))
def test_every_combination_of_installed_backends_gets_the_best_default(machine, monkeypatch):
    monkeypatch.delenv("NNFS_BACKEND", raising=False)
    registry = _registry(monkeypatch, machine)
    expected = _expected(machine)
    if expected is None:
        with pytest.raises(nnfs.BackendNotFound, match="no installed backend can run here"):
            registry.backend()
        return
    name, why = registry.default_backend()
    assert name == expected, (machine, why)
    assert "the best available backend (priority" in why and "NNFS_BACKEND" in why
    assert registry.backend() is registry.backend(expected)
    rows = {info.name: info for info in registry.infos()}
    assert [n for n, info in rows.items() if info.default] == [expected]


def test_the_environment_variable_wins_over_the_best(monkeypatch):
    registry = _registry(monkeypatch, {"cpu": "available", "cuda": "available"})
    monkeypatch.setenv("NNFS_BACKEND", "cpu")
    assert registry.default_backend() == ("cpu", "the environment variable NNFS_BACKEND='cpu'")
    assert registry.backend() is registry.backend("cpu")


def test_a_third_party_backend_of_higher_priority_is_the_default(monkeypatch):
    monkeypatch.delenv("NNFS_BACKEND", raising=False)
    registry = _registry(monkeypatch, {"cpu": "available"})
    registry.register_backend(api.BackendSpec(name="fast", factory=CpuBackend, api_version=2,
                                              priority=50))
    registry.register_backend(api.BackendSpec(name="slow", factory=CpuBackend, api_version=2))
    assert registry.default_backend()[0] == "fast"


def test_cpu_goes_first_among_backends_of_equal_priority(monkeypatch):
    monkeypatch.delenv("NNFS_BACKEND", raising=False)
    registry = _registry(monkeypatch, {"cpu": "available"})
    registry.register_backend(api.BackendSpec(name="another", factory=CpuBackend,
                                              api_version=2, priority=cpu_plugin.PRIORITY))
    assert registry.default_backend()[0] == "cpu"


def test_the_bundled_plugins_declare_their_ranks_and_options():
    import importlib

    specs = {}
    for module in ("nnfs_cpu.plugin", "nnfs_opencl.plugin", "nnfs_cuda.plugin"):
        try:
            plugin = importlib.import_module(module)
        except ImportError:
            continue
        for spec in plugin.nnfs_backends():
            specs[spec.name] = spec
    if "opencl" in specs:
        assert specs["opencl"].priority > specs["cpu"].priority  # with a GPU
    if "cuda" in specs:
        assert specs["cuda"].priority > specs.get("opencl", specs["cpu"]).priority
    assert {option.name for option in specs["cpu"].options} == {"threads", "blas", "direct_blas",
                                                                "vml"}


# --- options as text ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, options", [
    ("cpu", {}),
    ("cpu:threads=1", {"threads": 1}),
    ("CPU: threads = 1 , blas = numpy", {"threads": 1, "blas": "numpy"}),
    ("cpu:vml=off,direct_blas=yes", {"vml": False, "direct_blas": True}),
])
def test_options_written_as_text_are_read_as_the_backend_declares(text, options):
    factory = nnfs.backend(text)
    backend = factory.backend
    assert factory.name == "cpu"
    if "threads" in options:
        assert backend.threads == options["threads"]
    if "vml" in options:
        assert backend._vml is None
    assert nnfs.backend(text) is factory, "the same backend and options: the same factory"


@pytest.mark.parametrize("text, error, words", [
    ("cpu:thread=1", nnfs.NnfsTypeError, "does not take the option(s) 'thread'; it takes: threads"),
    ("cpu:threads=two", nnfs.NnfsValueError, "threads='two' is not a int"),
    ("cpu:blas=fast", nnfs.NnfsValueError, "blas='fast' is not allowed; expected one of 'auto'"),
    ("cpu:threads", nnfs.NnfsValueError, "options are written NAME:key=value"),
    ("cpu:", nnfs.NnfsValueError, "nothing follows ':'"),
    ("cpu:threads=1,threads=2", nnfs.NnfsValueError, "the option 'threads' is given twice"),
    (":threads=1", nnfs.NnfsValueError, "is not a valid backend name"),
    ("nosuch:x=1", nnfs.BackendNotFound, "names no installed backend"),
])
def test_bad_options_as_text_are_refused_naming_what_is_wrong(text, error, words):
    with pytest.raises(error) as raised:
        nnfs.backend(text)
    assert words in str(raised.value)


def test_an_option_given_as_text_and_as_a_keyword_is_refused():
    with pytest.raises(nnfs.NnfsValueError, match="as text and again as keyword arguments"):
        nnfs.backend("cpu:threads=1", threads=2)


def test_options_reach_the_backend_from_the_environment_the_command_line_and_the_kit():
    env = {"NNFS_BACKEND": "cpu:threads=1,blas=numpy"}
    result = run_nnfs("demo", env=env)
    assert result.returncode == 0, result.stderr
    assert "1 thread" in result.stdout and "MKL" not in result.stdout.splitlines()[0]
    result = run_nnfs("demo", "--backend", "cpu:threads=1")
    assert result.returncode == 0 and "1 thread" in result.stdout, result.stderr
    result = run_nnfs("demo", "--backend", "cpu:blas=fast")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "blas='fast' is not allowed" in result.stderr
    result = run_python("-m", "nnfs.testing", "cpu:threads=1", "--dtype", "float64", "-k",
                        "gemm")
    assert result.returncode == 0, result.stdout + result.stderr


def test_nnfs_backends_says_which_is_the_default_and_why():
    result = run_nnfs("backends")
    assert "\ndefault: " in result.stdout and "the best available backend" in result.stdout
    assert "options of cpu" in result.stdout and "threads=int" in result.stdout
    report = json.loads(run_nnfs("backends", "--json").stdout)
    default = report["default"]
    assert default["name"] in {row["name"] for row in report["backends"] if row["available"]}
    assert [row["name"] for row in report["backends"] if row["default"]] == [default["name"]]
    assert all(isinstance(row["priority"], int) for row in report["backends"])


def test_a_backend_whose_rank_cannot_beat_the_best_is_not_probed(monkeypatch):
    """A backend's rank (cheap: no device touched) spares its probe when it cannot win: the
    OpenCL backend's probe starts PoCL, which writes into ~/.cache, for nothing on a machine
    whose only OpenCL device is a CPU."""
    monkeypatch.delenv("NNFS_BACKEND", raising=False)
    probes = []

    def probe() -> api.BackendStatus:
        probes.append(1)
        return api.BackendStatus(True, priority=5)

    spec = api.BackendSpec(name="ranked", factory=CpuBackend, api_version=2, priority=20,
                           probe=probe, rank=lambda: 5)
    registry = _registry(monkeypatch, {"cpu": "available"})
    registry.register_backend(spec)
    assert registry.default_backend()[0] == "cpu" and probes == []
    alone = _registry(monkeypatch, {})
    alone.register_backend(spec)
    assert alone.default_backend()[0] == "ranked" and probes == [1]


@pytest.mark.parametrize("libraries, expected", [
    (["libpocl.so.2"], 5),
    (["libpocl.so.2", "libnvidia-opencl.so.1"], 20),
    (["/opt/rocm/lib/libamdocl64.so"], 20),
])
def test_the_opencl_rank_reads_the_installed_drivers_without_starting_opencl(
        tmp_path, monkeypatch, libraries, expected):
    plugin = pytest.importorskip("nnfs_opencl.plugin", reason="nnfs-opencl is not installed")
    vendors = tmp_path / "vendors"
    vendors.mkdir()
    for i, library in enumerate(libraries):
        (vendors / f"vendor{i}.icd").write_text(library + "\n")
    monkeypatch.setattr(plugin, "_icd_libraries", lambda: [
        (vendors / name).read_text().strip() for name in sorted(p.name for p in vendors.iterdir())])
    assert plugin.rank() == expected
    monkeypatch.undo()
    monkeypatch.setenv("OCL_ICD_VENDORS", str(vendors))
    assert all(library in plugin._icd_libraries() for library in libraries)
