"""test_runner - tests/run.sh run on fake suites, so a lost failure shows.

Each case builds a small tree (tests/e2e/test_*.py fake suites, build/unit a
fake unit binary), runs the runner in it with TN_SELFTEST_DIR and
TN_SELFTEST_SUITES naming the fakes, and reads its exit status and last line.
The runner must fail the run for a suite that prints a clean line and then
exits non-zero or dies by a signal, a listed suite that is missing, a suite
that ran no test or printed no result line, and a suite file nobody listed;
TN_SUITE narrows what is expected.  Last, the real list in tests/run.sh must
name exactly the suite files on disk, this one included, and every suite must
import tnlib (which installs the response checker).

TN_RUNNER=path runs another runner script on the same cases (to see an old
one fail them).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tnlib  # noqa: E402

S = tnlib.Suite("runner")
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RUNNER = os.path.abspath(os.environ.get("TN_RUNNER", os.path.join(ROOT, "tests", "run.sh")))

FAKES = {
    "test_good.py": 'print("ok   a\\nok   b\\n2 passed, 0 failed")',
    "test_clean_then_exit1.py": 'import sys\nprint("3 passed, 0 failed", flush=True)\nsys.exit(1)',
    "test_clean_then_segv.py": ('import os, signal\nprint("1 passed, 0 failed", flush=True)\n'
                                'os.kill(os.getpid(), signal.SIGSEGV)'),
    "test_zero.py": 'print("0 passed, 0 failed")',
    "test_no_line.py": 'print("ok   something, but no result line")',
    "test_failing.py": 'import sys\nprint("1 passed, 2 failed")\nsys.exit(1)',
    "test_skips.py": 'print("1 passed, 0 failed, 1 skipped")',
}
UNIT = '#!/bin/sh\necho "ok   unit_a"\necho "5 passed, 0 failed"\n'


def run(files, listed, suite=None):
    """Runs the runner in a tree holding files (names from FAKES) with listed
    as its expected suites; returns (exit status, last line, whole output)."""
    tree = tempfile.mkdtemp(prefix="tn-runner-")
    try:
        os.makedirs(os.path.join(tree, "tests", "e2e"))
        os.makedirs(os.path.join(tree, "build"))
        for name in files:
            with open(os.path.join(tree, "tests", "e2e", name), "w") as f:
                f.write(FAKES[name] + "\n")
        unit = os.path.join(tree, "build", "unit")
        with open(unit, "w") as f:
            f.write(UNIT)
        os.chmod(unit, 0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TN_")}
        env.update(TN_SELFTEST_DIR="tests/e2e", TN_SELFTEST_SUITES=" ".join(listed))
        if suite is not None:
            env["TN_SUITE"] = suite
        p = subprocess.run(["sh", RUNNER, "build"], cwd=tree, env=env, capture_output=True,
                           text=True, timeout=120)
        lines = [x for x in p.stdout.splitlines() if x.strip()]
        return p.returncode, lines[-1] if lines else "", p.stdout + p.stderr
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def counts(line):
    m = re.fullmatch(r"(\d+) passed, (\d+) failed(?:, (\d+) skipped)?", line)
    return tuple(int(x or 0) for x in m.groups()) if m else None


def all_clean_suites_pass():
    rc, last, out = run(["test_good.py", "test_skips.py"], ["unit", "test_good.py", "test_skips.py"])
    S.eq(rc, 0, "exit status of a clean run:\n" + out)
    S.eq(counts(last), (8, 0, 1), "last line of a clean run")


def a_clean_line_then_exit_1_fails_the_run():
    rc, last, out = run(["test_good.py", "test_clean_then_exit1.py"],
                        ["unit", "test_good.py", "test_clean_then_exit1.py"])
    S.check(rc != 0, "the runner exits non-zero:\n" + out)
    S.check(counts(last) is not None and counts(last)[1] >= 1,
            "the last line counts a failure: %r" % last)
    S.check("test_clean_then_exit1.py exited with status 1" in out, "says which suite and why")


def a_clean_line_then_a_signal_fails_the_run():
    rc, last, out = run(["test_clean_then_segv.py"], ["test_clean_then_segv.py"])
    S.check(rc != 0, "the runner exits non-zero:\n" + out)
    S.check(counts(last) is not None and counts(last)[1] >= 1, "a failure counted: %r" % last)
    S.check("killed by signal 11" in out, "says it was a signal: " + out[-300:])


def a_missing_suite_fails_the_run():
    rc, last, out = run(["test_good.py"], ["unit", "test_good.py", "test_gone.py"])
    S.check(rc != 0, "the runner exits non-zero:\n" + out)
    S.check(counts(last) is not None and counts(last)[1] >= 1, "a failure counted: %r" % last)
    S.check("test_gone.py is expected" in out, "names the missing suite")


def a_missing_unit_binary_fails_the_run():
    # The fake tree always has build/unit; list a build without one.
    tree = tempfile.mkdtemp(prefix="tn-runner-")
    try:
        os.makedirs(os.path.join(tree, "tests", "e2e"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TN_")}
        env.update(TN_SELFTEST_DIR="tests/e2e", TN_SELFTEST_SUITES="unit")
        p = subprocess.run(["sh", RUNNER, "nobuild"], cwd=tree, env=env, capture_output=True,
                           text=True, timeout=60)
        S.check(p.returncode != 0, "no unit binary: non-zero exit:\n" + p.stdout)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def a_suite_that_ran_no_test_fails_the_run():
    rc, last, out = run(["test_zero.py"], ["test_zero.py"])
    S.check(rc != 0, "the runner exits non-zero:\n" + out)
    S.check(counts(last) is not None and counts(last)[1] >= 1, "a failure counted: %r" % last)
    S.check("test_zero.py ran no test" in out, "says so")


def a_suite_without_a_result_line_fails_the_run():
    rc, last, out = run(["test_no_line.py"], ["test_no_line.py"])
    S.check(rc != 0, "the runner exits non-zero:\n" + out)
    S.check(counts(last) is not None and counts(last)[1] >= 1, "a failure counted: %r" % last)


def an_unlisted_suite_fails_the_run():
    rc, last, out = run(["test_good.py", "test_skips.py"], ["unit", "test_good.py"])
    S.check(rc != 0, "the runner exits non-zero:\n" + out)
    S.check("test_skips.py is a suite file but not listed" in out, "names the unlisted file")


def failures_are_counted_once():
    rc, last, out = run(["test_failing.py"], ["test_failing.py"])
    S.check(rc != 0, "the runner exits non-zero")
    S.eq(counts(last), (1, 2, 0), "the suite's own failures, not one more")


def tn_suite_narrows_what_is_expected():
    listed = ["unit", "test_good.py", "test_gone.py", "test_zero.py"]
    rc, last, out = run(["test_good.py", "test_zero.py"], listed, suite="good")
    S.eq(rc, 0, "TN_SUITE=good: the others are not expected:\n" + out)
    S.eq(counts(last), (2, 0, 0), "TN_SUITE=good runs that suite only")
    rc, last, out = run(["test_good.py", "test_zero.py"], listed, suite="gone")
    S.check(rc != 0, "TN_SUITE=gone selects a missing suite: fails:\n" + out)
    rc, last, out = run(["test_good.py", "test_zero.py"], listed, suite="nothing-like-it")
    S.check(rc != 0, "TN_SUITE selecting no listed suite fails:\n" + out)
    S.check("selects no listed suite" in out, "says so")
    rc, last, out = run(["test_good.py"], listed[:2], suite="unit")
    S.eq((rc, counts(last)), (0, (5, 0, 0)), "TN_SUITE=unit")


def the_real_list_names_every_suite_file():
    with open(os.path.join(ROOT, "tests", "run.sh")) as f:
        text = f.read()
    m = re.search(r'^SUITES="([^"]*)"', text, re.M)
    if not S.check(m, "tests/run.sh has a SUITES list"):
        return
    listed = m.group(1).split()
    on_disk = sorted(n for n in os.listdir(os.path.join(ROOT, "tests", "e2e"))
                     if re.fullmatch(r"test_.*\.py", n))
    S.eq(sorted(x for x in listed if x != "unit"), on_disk, "listed suites vs files")
    S.check("unit" in listed, "the unit tests are listed")
    S.check("test_runner.py" in listed, "this self-test is listed")
    S.eq(len(listed), len(set(listed)), "no suite listed twice")


def every_suite_imports_the_response_checker():
    """Importing tnlib installs the check for tenant ids under every socket
    (tnlib.CHECKER); a suite that did not import it would read the daemon
    unchecked."""
    d = os.path.join(ROOT, "tests", "e2e")
    for name in sorted(os.listdir(d)):
        if re.fullmatch(r"test_.*\.py", name):
            with open(os.path.join(d, name)) as f:
                S.check(re.search(r"^import tnlib\b", f.read(), re.M), "%s imports tnlib" % name)


def main():
    print("runner under test: %s" % RUNNER, flush=True)
    for fn in (all_clean_suites_pass, a_clean_line_then_exit_1_fails_the_run,
               a_clean_line_then_a_signal_fails_the_run, a_missing_suite_fails_the_run,
               a_missing_unit_binary_fails_the_run, a_suite_that_ran_no_test_fails_the_run,
               a_suite_without_a_result_line_fails_the_run, an_unlisted_suite_fails_the_run,
               failures_are_counted_once, tn_suite_narrows_what_is_expected,
               the_real_list_names_every_suite_file, every_suite_imports_the_response_checker):
        S.run(fn)
    S.finish()


if __name__ == "__main__":
    main()
