"""benchlib.py - what every Python benchmark in bench/ shares: progress lines,
the "@@ name|value|unit|goal" figure lines bench/run.sh collects (also
appended to $TN_BENCH_OUT when set), children's CPU time, and the aws CLI's
real entry point."""
import os
import resource
import shutil
import subprocess
import sys


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def metric(name, value, unit, goal=""):
    line = "@@ %s|%.6g|%s|%s" % (name, value, unit, goal)
    print(line, flush=True)
    out = os.environ.get("TN_BENCH_OUT", "")
    if out:
        with open(out, "a") as f:
            f.write(line[3:] + "\n")


def child_cpu():
    """User + system seconds of every child this process has waited for."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def aws_cli():
    """The aws CLI's real entry point (a pyenv shim would add its own CPU)."""
    path = shutil.which("aws")
    if path and "/shims/" in path and shutil.which("pyenv"):
        p = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True)
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.strip()
    return path or "aws"
