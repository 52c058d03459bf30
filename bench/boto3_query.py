"""boto3_query.py URL TABLE PK - the reference client of bench/restore.py:
reads one DynamoDB partition with boto3's paginated Query (ConsistentRead,
every attribute, DynamoDB's own 1 MB pages), as an application would.

Prints one JSON line: rows, pages, response bytes, and the wall and CPU time
of the read loop alone (after the interpreter started and boto3 was
imported), which restore.py shows next to the whole process's CPU.
"""
import json
import sys
import time


def main():
    url, table, pk = sys.argv[1:4]
    import boto3  # noqa: E402 (imported here: its import is part of the process, not the loop)
    c0, t0 = time.process_time(), time.perf_counter()
    ddb = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    got = {"bytes": 0}

    def count(http_response=None, **_):
        if http_response is not None:
            got["bytes"] += len(http_response.content)
    ddb.meta.events.register("after-call.dynamodb.Query", count)
    rows = pages = 0
    for page in ddb.get_paginator("query").paginate(
            TableName=table, KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": pk}}, ConsistentRead=True,
            Select="ALL_ATTRIBUTES"):
        rows += len(page["Items"])
        pages += 1
    print(json.dumps({"rows": rows, "pages": pages, "bytes": got["bytes"],
                      "loop_wall": time.perf_counter() - t0,
                      "loop_cpu": time.process_time() - c0}))


if __name__ == "__main__":
    main()
