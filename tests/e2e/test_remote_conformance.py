"""test_remote_conformance - the remote conformance suite (tests/test_remote.c),
the same C tests `make test` runs on the directory backend, run against the
AWS backend through moto_server (TN_REMOTE_SPEC=aws).

Every test of the suite must run and pass: the count is taken from the
source, so a test the unit runner skipped or lost fails here.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import awslib  # noqa: E402
import tnlib  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("TN_BUILD", "build")
T = tnlib.Suite("remote conformance")


def suite_names():
    with open(os.path.join(ROOT, "tests", "test_remote.c")) as f:
        return re.findall(r"^TEST\((remote_[a-z0-9_]+)\)", f.read(), re.M)


def conformance_on_aws(moto):
    names = suite_names()
    T.check(len(names) >= 15, "the suite has its tests: %d" % len(names))
    ddb, s3 = awslib.clients(moto.url)
    bucket = "conformance-%d" % os.getpid()
    s3.create_bucket(Bucket=bucket)
    env = awslib.sync_env(moto.url, bucket, "conformance")
    env["TN_REMOTE_SPEC"] = "aws"
    env["TN_TEST_TIMEOUT"] = "300"
    p = subprocess.run([os.path.join(BUILD, "unit"), "remote_"], env=env, capture_output=True,
                       text=True, timeout=1500)
    ok = set(re.findall(r"^ok   (remote_[a-z0-9_]+)", p.stdout, re.M))
    bad = re.findall(r"^FAIL (remote_[a-z0-9_]+)", p.stdout, re.M)
    for n in names:
        T.check(n in ok, "%s passes against AWS (moto)" % n)
    T.eq(bad, [], "tests that failed against AWS")
    if bad:
        print(p.stdout[-4000:])
    T.eq(p.returncode, 0, "the unit runner's exit status")


def main():
    awslib.asan_reexec()
    try:
        moto = awslib.Moto()
    except Exception as e:  # noqa: BLE001
        print("moto_server unavailable: %s" % e)
        print("0 passed, 1 failed")
        return 1
    try:
        T.run(conformance_on_aws, moto)
    finally:
        moto.stop()
    T.finish()


if __name__ == "__main__":
    sys.exit(main())
