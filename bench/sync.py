"""sync.py - measures tenantry's sync engine against the reference AWS
clients on one moto_server (see sync.sh).  Items are measured twice: the
default (one conditional PutItem per row, eight in flight, so an older write
never replaces a newer one) and TENANTRY_SYNC_SINGLE_WRITER=1 (BatchWriteItem
of 25 without the condition, like batch_writer).  Prints medians of every round and
the ratios; client CPU is user+system seconds of the client process only
(moto's own CPU is not counted for either side).

TENANTRY_SYNC_TRANSACT=1 is not measured here: moto deep-copies the whole table
for every TransactWriteItems (and fails transactions that overlap), so on moto its
cost grows with the table, not with the request count it saves against AWS.
"""
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
os.environ["TN_BUILD"] = sys.argv[1] if len(sys.argv) > 1 else "build"
import awslib  # noqa: E402

BUILD = os.environ["TN_BUILD"]
TENANTRY = os.path.join(BUILD, "tenantry")
N_ITEMS = int(os.environ.get("TN_BENCH_SYNC_ITEMS", "20000"))
N_FILES = int(os.environ.get("TN_BENCH_SYNC_FILES", "1000"))
BIG_MB = int(os.environ.get("TN_BENCH_SYNC_BIG_MB", "256"))
ROUNDS = int(os.environ.get("TN_BENCH_ROUNDS", "3"))


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_child(args, env):
    """Wall seconds and client CPU seconds of one child process."""
    c0, t0 = child_cpu(), time.perf_counter()
    p = subprocess.run(args, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, child_cpu() - c0
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s %s" % (args[:2], p.stdout[-500:], p.stderr[-500:]))
    return wall, cpu, p.stdout


def doc(i):
    return json.dumps({"n": i, "name": "item-%d" % i, "tags": ["a", "b"], "ok": True,
                       "nested": {"x": i * 2, "y": "z" * 40}})


class Round:
    n = 0

    def __init__(self, moto):
        Round.n += 1
        self.dir = tempfile.mkdtemp(prefix="tn-bench-sync-")
        self.data = os.path.join(self.dir, "data")
        self.table = "bench%d" % Round.n
        self.bucket = "bench%d-%d" % (Round.n, os.getpid())
        self.env = awslib.sync_env(moto.url, self.bucket, self.table)
        self.env["TENANTRY_DATA"] = self.data
        self.ddb, self.s3 = awslib.clients(moto.url)
        self.moto = moto
        subprocess.run([TENANTRY, "init"], env=self.env, check=True, capture_output=True)
        subprocess.run([TENANTRY, "tenant", "create", "acme"], env=self.env, check=True,
                       capture_output=True)
        self.s3.create_bucket(Bucket=self.bucket)
        subprocess.run([TENANTRY, "remote", "init"], env=self.env, check=True, capture_output=True)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def bench_items(moto, single_writer=False):
    r = Round(moto)
    if single_writer:
        r.env["TENANTRY_SYNC_SINGLE_WRITER"] = "1"
    try:
        st = awslib.Store(r.data)
        st.put_items("acme", (("i%06d" % i, doc(i)) for i in range(N_ITEMS)))
        st.close()
        wall, cpu, out = run_child([TENANTRY, "sync", "--once"], r.env)
        s = json.loads(out.strip().splitlines()[-1])
        assert s["items"] == N_ITEMS, s
        # boto3 Table.batch_writer(), same rows (the converted form of the same
        # documents), into a table of its own.
        import boto3
        res = boto3.resource("dynamodb", endpoint_url=moto.url, region_name=awslib.REGION,
                             aws_access_key_id="testing", aws_secret_access_key="testing")
        name = r.table + "_boto3"
        res.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}])
        table = res.Table(name)
        rows = [{"pk": "TENANT#bench", "sk": "ITEM#i%06d" % i, "version": i + 1,
                 "updated_at": "2026-01-01T00:00:00.000Z", "deleted": False,
                 "data": json.loads(doc(i))} for i in range(N_ITEMS)]
        c0, t0 = time.process_time(), time.perf_counter()
        with table.batch_writer() as bw:
            for row in rows:
                bw.put_item(Item=row)
        bwall, bcpu = time.perf_counter() - t0, time.process_time() - c0
        return (N_ITEMS / wall, cpu, N_ITEMS / bwall, bcpu)
    finally:
        r.close()


def bench_files(moto):
    r = Round(moto)
    try:
        st = awslib.Store(r.data)
        src = os.path.join(r.dir, "src")
        os.makedirs(src)
        for i in range(N_FILES):
            data = os.urandom(4096)
            st.put_file("acme", "f%05d.bin" % i, data)
            with open(os.path.join(src, "f%05d.bin" % i), "wb") as f:
                f.write(data)
        st.close()
        wall, cpu, out = run_child([TENANTRY, "sync", "--once"], r.env)
        s = json.loads(out.strip().splitlines()[-1])
        assert s["files"] == N_FILES, s
        awall, acpu, _ = run_child(["aws", "s3", "sync", src, "s3://%s/awscli/" % r.bucket,
                                    "--endpoint-url", moto.url, "--only-show-errors"], r.env)
        return (N_FILES / wall, cpu, N_FILES / awall, acpu)
    finally:
        r.close()


def bench_big(moto):
    r = Round(moto)
    try:
        st = awslib.Store(r.data)
        src = os.path.join(r.dir, "big.bin")
        with open(src, "wb") as f:
            for _ in range(BIG_MB):
                f.write(os.urandom(1 << 20))
        with open(src, "rb") as f:
            data = f.read()
        st.put_file("acme", "big.bin", data)
        del data
        st.close()
        wall, cpu, out = run_child([TENANTRY, "sync", "--once"], r.env)
        awall, acpu, _ = run_child(["aws", "s3", "cp", src, "s3://%s/awscli/big.bin" % r.bucket,
                                    "--endpoint-url", moto.url, "--only-show-errors"], r.env)
        return (BIG_MB / wall, cpu, BIG_MB / awall, acpu)
    finally:
        r.close()


def report(title, unit, base, results):
    med = [statistics.median(x[i] for x in results) for i in range(4)]
    print("%-22s tenantry %9.1f %s  cpu %6.2fs | %-22s %9.1f %s  cpu %6.2fs | ratio %.2fx, cpu %.2fx"
          % (title, med[0], unit, med[1], base, med[2], unit, med[3], med[0] / med[2],
             med[1] / med[3] if med[3] else 0))


def main():
    moto = awslib.Moto()
    try:
        print("rounds: %d (medians); one moto_server for everything" % ROUNDS)
        if N_ITEMS:
            report("%d items" % N_ITEMS, "items/s", "boto3 batch_writer",
                   [bench_items(moto) for _ in range(ROUNDS)])
            report("%d items 1-writer" % N_ITEMS, "items/s", "boto3 batch_writer",
                   [bench_items(moto, True) for _ in range(ROUNDS)])
        if N_FILES:
            report("%d x 4 KiB files" % N_FILES, "files/s", "aws s3 sync",
                   [bench_files(moto) for _ in range(ROUNDS)])
        if BIG_MB:
            report("%d MiB file" % BIG_MB, "MiB/s", "aws s3 cp",
                   [bench_big(moto) for _ in range(ROUNDS)])
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
