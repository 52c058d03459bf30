"""boto3_items.py ENDPOINT TABLE N PROGRESS - the reference client for the
sync benchmark's items (bench/sync.py): boto3's Table.batch_writer() writes
the same N rows the sync engine writes (bench_docs.doc), in the form the
engine gives them (pk, sk, version, updated_at, deleted, data as a map).

Its own process, so its CPU is measured like the sync engine's.  Only the
write loop is timed (not the interpreter's start or the import of boto3):
that favours the reference.  Every second it writes "rows_sent wall cpu" to
PROGRESS, and when done "done wall cpu"; the caller may stop it early and
extrapolate from the last progress line.
"""
import json
from decimal import Decimal
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_docs  # noqa: E402


def main():
    endpoint, table_name, n, progress = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    import boto3
    res = boto3.resource("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    table = res.Table(table_name)
    rows = [{"pk": "TENANT#bench", "sk": "ITEM#" + bench_docs.item_id(i), "version": i + 1,
             "updated_at": "2026-01-01T00:00:00.000Z", "deleted": False,
             # the change feed's attribute, so the index does the same work
             "feed": 1767225600000 + i,
             "data": json.loads(bench_docs.doc(i), parse_float=Decimal)} for i in range(n)]

    def note(what, t0, c0):
        tmp = progress + ".tmp"
        with open(tmp, "w") as f:
            f.write("%s %.4f %.4f\n" % (what, time.perf_counter() - t0, time.process_time() - c0))
        os.replace(tmp, progress)

    c0, t0 = time.process_time(), time.perf_counter()
    last = t0
    with table.batch_writer() as bw:
        for i, row in enumerate(rows):
            bw.put_item(Item=row)
            now = time.perf_counter()
            if now - last >= 1.0:
                # batch_writer holds up to 25 rows before it sends them
                note(str(max(0, i + 1 - 25)), t0, c0)
                last = now
    note("done", t0, c0)


if __name__ == "__main__":
    main()
