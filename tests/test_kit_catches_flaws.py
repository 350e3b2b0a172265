"""The conformance kit can fail: ``python -m nnfs.testing NAME`` on deliberately flawed backends.

The backends of tests/plugins/flawed/ are the reference backend with one flaw each. For each, the
checks that exercise the flaw must fail, the checks that cannot see it must pass, and the command
must exit non-zero and name the failing checks. ``inference-only``, which declares what it lacks
the way the contract asks, must pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from conftest import run_python
from nnfs.testing import CHECKS

ALL_CHECKS = {check.name for check in CHECKS}
LINE = re.compile(r"^(ok|FAIL|ERROR|skip)\s+(float32|float64)\s+(\w+)\s+[\d.]+s(?:\s+(.*))?$")


@dataclass
class KitRun:
    returncode: int
    outcomes: dict[tuple[str, str], str]  # (dtype, check): "ok", "FAIL", "ERROR" or "skip"
    messages: dict[tuple[str, str], str]
    stdout: str
    stderr: str

    def checks(self, outcome: str, dtype: str = "float32") -> set[str]:
        return {check for (d, check), o in self.outcomes.items() if d == dtype and o == outcome}


def run_kit(plugin_site, name: str, *options: str) -> KitRun:
    result = run_python("-m", "nnfs.testing", name, *options, plugins=plugin_site)
    outcomes, messages = {}, {}
    for line in result.stdout.splitlines():
        match = LINE.match(line)
        if match:
            outcome, dtype, check, message = match.groups()
            outcomes[dtype, check] = outcome
            messages[dtype, check] = message or ""
    return KitRun(result.returncode, outcomes, messages, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def kit(plugin_site):
    """``kit(name, *options)``: the kit's run on that backend, made once per module."""
    runs: dict[tuple[str, ...], KitRun] = {}

    def run(*arguments: str) -> KitRun:
        if arguments not in runs:
            runs[arguments] = run_kit(plugin_site, *arguments)
        return runs[arguments]

    return run


def assert_names_failures(run: KitRun, name: str, failing: set[str], dtype="float32") -> None:
    """The exit status is 1 and stderr lists each failing check, with its message."""
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"{name} does not conform:" in run.stderr
    for check in failing:
        assert f"  {dtype} {check}: {run.messages[dtype, check]}" in run.stderr, check


#: backend: (checks that must fail, checks that must pass because they cannot see the flaw)
FLAWS = {
    "wrong-sigmoid": (
        {"activation_derivatives", "gradients", "training_matches_reference"},
        {"transfer_and_views", "gemm", "gemv", "vector_operations", "activations", "cost_sums",
         "synchronize", "no_allocation_per_epoch", "bad_input", "declarations"},
    ),
    "gemm-ignores-beta": (
        {"gemm"},
        # training only ever calls gemm with beta 0: everything else passes
        ALL_CHECKS - {"gemm"},
    ),
    # the flaws an outsider's backend had while it passed the whole kit (issue #16)
    "gemm-nan-through": ({"outputs_ignore_what_they_held"},
                         ALL_CHECKS - {"outputs_ignore_what_they_held"}),
    "gemv-nan-through": ({"outputs_ignore_what_they_held"},
                         ALL_CHECKS - {"outputs_ignore_what_they_held"}),
    "read-shares-memory": ({"host_copies_are_private"}, {"gemm", "gemv", "activations"}),
    "read-fortran-order": ({"host_copies_are_private"},
                           ALL_CHECKS - {"host_copies_are_private"}),
    "categorical-nan-at-0": ({"costs_at_saturated_outputs"},
                             ALL_CHECKS - {"costs_at_saturated_outputs"}),
    "nrm2-not-a-float": ({"host_copies_are_private", "nrm2_extremes"},
                         ALL_CHECKS - {"host_copies_are_private", "nrm2_extremes"}),
}

#: backend: what the message of its failing check says
FLAW_MESSAGES = {
    "gemm-nan-through": "gemm with beta 0 on gemm-nan-through float32: NaN the output held "
                        "before came through",
    "gemv-nan-through": "gemv with beta 0 on gemv-nan-through float32: NaN the output held "
                        "before came through",
    "read-shares-memory": "writing into the array transfer(a matrix) returned changed the "
                          "device: it shares the device's memory instead of being a copy",
    "read-fortran-order": "transfer of a matrix gave an array in Fortran (or no) order",
    "categorical-nan-at-0": "cost_sum categorical_cross_entropy at outputs of exactly 0 and 1 "
                            "on categorical-nan-at-0 float32 is nan",
    "nrm2-not-a-float": "nrm2 returned numpy.float32",
}


@pytest.mark.parametrize("name", sorted(FLAWS))
def test_the_checks_that_see_the_flaw_fail_and_the_others_pass(kit, name):
    must_fail, must_pass = FLAWS[name]
    run = kit(name)
    assert set(check for _, check in run.outcomes) == ALL_CHECKS, run.stdout + run.stderr
    assert must_fail <= run.checks("FAIL"), run.stdout
    assert must_pass <= run.checks("ok"), run.stdout
    assert_names_failures(run, name, must_fail)


@pytest.mark.parametrize("name", sorted(FLAW_MESSAGES))
def test_each_flaw_is_named_in_its_failure(kit, name):
    run = kit(name)
    check = "host_copies_are_private" if name == "nrm2-not-a-float" else min(FLAWS[name][0])
    assert run.messages["float32", check].startswith(FLAW_MESSAGES[name]), run.messages


def test_gemm_ignoring_beta_is_shown_with_a_beta_case(kit):
    run = kit("gemm-ignores-beta")
    message = run.messages["float32", "gemm"]
    beta = re.search(r"\), (-?[\d.]+), c \d+×\d+", message)  # gemm(α, a (.), b (.), β, c m×n)
    assert beta is not None and float(beta.group(1)) != 0.0, message


def test_an_operation_declared_unsupported_is_refused_even_if_the_backend_would_answer(kit,
                                                                                      plugin_site):
    """In plugin API 1 a factory could answer a call it declared unsupported with a placeholder,
    and the kit had to catch it. In API 2 the factory refuses a declared-unsupported operation
    before the backend is reached, so the flaw cannot happen: the kit passes a backend that
    declares nrm2 unsupported and would answer 0.0, and nrm2 raises UnsupportedOperation."""
    run = kit("silent-unsupported")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.checks("FAIL") == set() and run.checks("ERROR") == set(), run.stdout
    result = run_python("-c", (
        "import nnfs\n"
        "f = nnfs.backend('silent-unsupported')\n"
        "try:\n"
        "    f.nrm2(f.vector(3, [1, 2, 3]))\n"
        "except nnfs.UnsupportedOperation as error:\n"
        "    print('refused:', error)\n"), plugins=plugin_site)
    assert result.stdout.startswith("refused: the silent-unsupported backend does not provide "
                                    "nrm2()"), result.stdout + result.stderr


def test_an_undeclared_gap_is_an_error_not_a_skip(kit):
    run = kit("undeclared-gap")
    key = ("float32", "vector_operations")
    assert run.outcomes[key] == "ERROR"
    assert "NotImplementedError: mul is not written yet" in run.messages[key]
    assert run.checks("skip") == set()
    assert_names_failures(run, "undeclared-gap", {"vector_operations"})


def test_a_declared_dtype_that_is_mishandled_fails_in_that_dtype_only(kit):
    run = kit("float64-mishandled")
    assert run.checks("ok", "float32") == ALL_CHECKS, run.stdout
    failing = run.checks("FAIL", "float64")
    assert {"transfer_and_views", "gemm", "training_matches_reference"} <= failing, run.stdout
    assert "transfer(matrix) gave (1, 1) float32, expected (1, 1) float64" in (
        run.messages["float64", "transfer_and_views"])
    assert_names_failures(run, "float64-mishandled", failing, "float64")


#: The checks of what inference-only declares it lacks (the backward pass, ger): skipped.
LACKING = {"rank1_update", "activation_derivatives", "synchronize", "no_allocation_per_epoch",
           "article_example", "gradients", "training_matches_reference", "agrees_with_cpu",
           "gradients_with_dropout", "optimizers_agree_with_cpu"}


def test_a_backend_that_declares_what_it_lacks_conforms(kit):
    """What a backend declares unsupported is checked to raise UnsupportedOperation, and then
    reported as skipped (declared unsupported), not as passed: the kit never says "ok" of
    what it did not run."""
    run = kit("inference-only")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.checks("skip") == LACKING
    assert run.checks("ok") == ALL_CHECKS - LACKING
    for check in LACKING:
        assert run.messages["float32", check].startswith("skipped (declared unsupported): ")
    assert run.messages["float32", "rank1_update"] == (
        "skipped (declared unsupported): rank1_update raises UnsupportedOperation, as declared")
    assert (f"inference-only: {len(ALL_CHECKS) - len(LACKING)} passed, 0 failed, "
            f"{len(LACKING)} skipped ({len(LACKING)} declared unsupported)") in run.stdout


def test_a_partly_supported_check_names_what_it_skipped(kit):
    """A check of several operations, some declared unsupported, passes the others and says
    which it skipped."""
    run = kit("partly-supported")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outcomes["float32", "vector_operations"] == "ok"
    assert run.messages["float32", "vector_operations"] == (
        "skipped (declared unsupported): nrm2")


def test_an_undeclared_dtype_is_refused_with_a_clear_error(kit):
    run = kit("inference-only", "--dtype", "float64")
    assert run.returncode == 2 and run.outcomes == {}
    assert run.stderr == ("python -m nnfs.testing: error: the inference-only backend does not "
                          "support float64; it supports float32\n")


def test_a_backend_that_cannot_load_is_refused_with_its_error(kit):
    run = kit("broken-import")
    assert run.returncode == 2 and run.outcomes == {}
    assert run.stderr.startswith("python -m nnfs.testing: error: the broken-import backend cannot "
                                 "be used here: importing nnfs_broken_import failed: "
                                 "ModuleNotFoundError")
    assert "Traceback" not in run.stderr


def test_the_kit_lists_its_checks_and_wants_a_backend_name():
    listed = run_python("-m", "nnfs.testing", "--list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [c.name for c in CHECKS]
    nameless = run_python("-m", "nnfs.testing")
    assert nameless.returncode == 2 and "give the name of the backend" in nameless.stderr
