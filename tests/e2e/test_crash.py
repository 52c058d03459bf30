"""test_crash - a short run of the crash-cycle driver (tests/crash/crash.py):
`tenantry serve` with sync on against moto_server, several tenants writing
items and files, SIGKILL at random and aimed moments, then restarts.  Each
cycle is one test (the daemon died by our SIGKILL and not by itself, check
clean, every acknowledged write present, exit 0 on SIGTERM), then the final
sync and DynamoDB/S3 compared with the store exactly.  The driver's own test
crashes a daemon on purpose and requires the driver to fail that cycle.
`make crash` runs the full 50 cycles.

TN_CRASH_CYCLES (default 6) and TN_CRASH_SEED (default random, printed)
change the run.
"""
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crash"))
import awslib  # noqa: E402
import tnlib  # noqa: E402


def a_multipart_upload_whose_id_a_crash_lost_is_aborted(suite, crash):
    """Killed between CreateMultipartUpload and recording its id: the record
    made before asking (version, no id) makes the next run abort what is open
    for that key, so no orphaned upload stays behind."""
    import hashlib
    import sqlite3
    drv = crash.Driver(1)
    try:
        drv.setup()
        t = drv.tenants[0]
        data = os.urandom(crash.BIG_FILE)
        st = awslib.Store(drv.data)
        try:
            st.put_file(t.name, "big/lost.bin", data)
        finally:
            st.close()
        key = "%s/files/big/lost.bin" % t.id
        orphan = drv.s3.create_multipart_upload(Bucket=drv.bucket, Key=key)["UploadId"]
        drv.s3.upload_part(Bucket=drv.bucket, Key=key, UploadId=orphan, PartNumber=1,
                           Body=b"x" * (5 << 20))
        db = sqlite3.connect(os.path.join(drv.data, "tenantry.db"))
        db.execute("INSERT INTO _sync_uploads (tenant, name, version, upload_id, at) "
                   "SELECT tenant, name, version, '', 0 FROM _files WHERE name = 'big/lost.bin'")
        db.commit()
        db.close()
        summary = drv.drain(suite)
        suite.check(summary.get("files") == 1, "the file synced: %r" % summary)
        ups = drv.s3.list_multipart_uploads(Bucket=drv.bucket).get("Uploads", [])
        suite.eq([u["UploadId"] for u in ups], [], "uploads left open")
        body = drv.s3.get_object(Bucket=drv.bucket, Key=key)["Body"].read()
        suite.eq(hashlib.sha256(body).hexdigest(), hashlib.sha256(data).hexdigest(), "object bytes")
        suite.eq(drv.sql("SELECT count(*) FROM _sync_uploads")[0][0], 0, "upload records left")
    finally:
        drv.close()


class Recorder:
    """Stands in for the suite in the driver's own test: records failed
    checks instead of printing them."""

    def __init__(self):
        self.failures = []

    def check(self, cond, what):
        if not cond:
            self.failures.append(what)
        return bool(cond)

    def eq(self, got, want, what):
        return self.check(got == want, "%s: got %r, want %r" % (what, got, want))


def the_driver_fails_a_daemon_that_dies_by_itself(suite, crash):
    """The driver's own test: a daemon that dies during a cycle by a signal
    this driver did not send as its kill (here SIGSEGV, as a crash or a
    sanitizer would) fails that cycle, and so does one that does not exit 0 on
    SIGTERM (here SIGABRT just before it); neither counts as a kill or a clean
    stop.  A third cycle with nothing done to it passes (its second appliance's
    pull and its restore too); in a fourth, the second appliance's pull
    skips what is new, and the cycle fails.  A restore killed after its last
    step is a whole store, not one to restore again."""
    import signal
    drv = crash.Driver(7, log=lambda s: print("  self-test " + s, flush=True))
    try:
        drv.setup()
        rec = Recorder()
        drv.cycle(1, rec, crash_signal=signal.SIGSEGV)
        died = [f for f in rec.failures if "died by itself" in f]
        suite.check(len(died) == 1 and ("SIGSEGV" in died[0] or "exit status" in died[0]),
                    "a daemon that crashed during a cycle fails it: %r" % rec.failures)
        suite.eq((drv.stats["kills"], drv.stats["self_deaths"]), (0, 1),
                 "counted as a death of its own, not as our kill")
        rec = Recorder()
        drv.cycle(2, rec, stop_signal=signal.SIGABRT)
        suite.check(any("on SIGTERM" in f and "got -6" in f for f in rec.failures),
                    "a daemon that does not exit 0 on SIGTERM fails the cycle: %r" % rec.failures)
        suite.eq((drv.stats["kills"], drv.stats["clean_stops"]), (1, 1),
                 "cycle 2 was our kill, but not a clean stop (cycle 1's stop was)")
        rec = Recorder()
        drv.cycle(3, rec)
        suite.eq(rec.failures, [], "a cycle left alone passes")
        suite.eq((drv.stats["kills"], drv.stats["clean_stops"], drv.stats["cycles"]), (2, 2, 3),
                 "counts after three cycles")
        # A pull that skips what was pushed (the second appliance's cursor
        # moved ten minutes ahead) must fail the cycle: the appliances differ.
        rec = Recorder()
        drv.cycle(4, rec, break_cursor=True)
        suite.check(any("a and b" in f and "rows differ" in f for f in rec.failures),
                    "a pull that skipped a page fails the cycle: %r" % [f[:200] for f in rec.failures])
        suite.eq(drv.stats["ab_rows_equal"], 3, "the skipped pull is not counted as equal")
        # A restore whose kill came after its last step (it ran to its end;
        # the kill found it still exiting): a whole store, which the driver
        # must not expect a second restore to write over.
        real = drv.killed_run

        def ran_to_the_end(args, env, aim, nth, budget):
            rc, fired, _ = real(args, env, None, 0, 120.0)
            suite.eq(rc, 0, "the self-test's restore ran to its end")
            return -9, fired, True
        drv.killed_run = ran_to_the_end
        rec = Recorder()
        drv.restore_cycle(rec, "self-test")
        drv.killed_run = real
        suite.eq(rec.failures, [], "a restore killed after its last step passes its cycle")
        suite.eq(drv.stats["restore_killed_after_the_end"], 1, "and is counted as such")
    finally:
        drv.close()


def main():
    awslib.asan_reexec()  # the multipart test records a file through libtenantry
    suite = tnlib.Suite("crash")
    cycles = int(os.environ.get("TN_CRASH_CYCLES", "6"))
    seed = int(os.environ.get("TN_CRASH_SEED", random.SystemRandom().randrange(1 << 31)))
    print("crash: %d cycles, seed %d (TN_CRASH_SEED=%d repeats the choices)" % (cycles, seed, seed),
          flush=True)
    counts = {}
    try:
        import crash
        counts = crash.run(suite, cycles, seed, log=lambda s: print(s, flush=True))
    except Exception as e:  # noqa: BLE001
        suite.check(False, "driver: %r" % e)

    def the_run_did_real_work():
        # A driver that wrote nothing or compared nothing proves nothing.  Each
        # count goes up only when the driver saw its event (crash.py).
        suite.eq(counts.get("cycles"), cycles, "cycles run to their end")
        suite.eq(counts.get("kills"), cycles, "daemons found dead by our SIGKILL, one per cycle")
        suite.eq(counts.get("self_deaths"), 0, "daemons that died by themselves")
        suite.eq(counts.get("clean_stops"), cycles, "daemons that exited 0 on SIGTERM, one per cycle")
        suite.check(counts.get("acked_writes", 0) > 100, "acknowledged writes: %r" %
                    counts.get("acked_writes"))
        suite.check(counts.get("rows_compared", 0) > 50, "DynamoDB rows compared: %r" %
                    counts.get("rows_compared"))
        suite.check(counts.get("objects_compared", 0) > 5, "S3 objects compared: %r" %
                    counts.get("objects_compared"))
        # The second appliance and the restores (crash.py pull_cycle, restore_cycle).
        suite.eq(counts.get("b_cycles"), cycles, "second appliance's turns run to their end")
        suite.eq(counts.get("ab_rows_equal"), cycles + 1,
                 "both appliances equal after every cycle and at the end")
        suite.check(counts.get("b_kills", 0) >= 1 and
                    counts.get("b_kill_query", 0) + counts.get("b_kill_get", 0) >= 1,
                    "second appliance's syncs SIGKILLed, at least one at a pull's request: "
                    "%r kills, %r at a Query, %r at a GET" % (
                        counts.get("b_kills"), counts.get("b_kill_query"), counts.get("b_kill_get")))
        suite.check(counts.get("b_writes", 0) >= cycles, "second appliance's writes: %r" %
                    counts.get("b_writes"))
        suite.eq(counts.get("restores"), cycles // 3 + 1, "restores completed and equal")
        suite.check(counts.get("restore_kills", 0) >= 1 and counts.get("restore_unfinished", 0) >= 1,
                    "restores SIGKILLed half way (%r) and seen unfinished by check (%r)" % (
                        counts.get("restore_kills"), counts.get("restore_unfinished")))
        suite.check(counts.get("restored_rows_compared", 0) > 50, "restored rows compared: %r" %
                    counts.get("restored_rows_compared"))
    suite.run(the_run_did_real_work)
    try:
        import crash
        suite.run(a_multipart_upload_whose_id_a_crash_lost_is_aborted, suite, crash)
        suite.run(the_driver_fails_a_daemon_that_dies_by_itself, suite, crash)
    except ImportError as e:
        suite.check(False, "import crash: %r" % e)
    suite.finish()


if __name__ == "__main__":
    main()
