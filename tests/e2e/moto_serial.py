"""moto_serial - moto_server whose DynamoDB writes are isolated, as
DynamoDB's are.

moto's TransactWriteItems deep-copies each table it writes as a backup and
puts that copy back when any item's condition fails: a write another thread
made in between (another transaction's rows, a PutItem) is undone although
it was answered 200, and a copy taken while another thread writes fails
with HTTP 500.  DynamoDB isolates a transaction from every other write, so
a client that sends transactions side by side (the sync engine's
transactional mode does, with a cancelled transaction after every replay)
sees acknowledged rows vanish on moto only.  The suites therefore run moto
with one lock around its DynamoDB writes; reads take no lock.

Run as `python3 moto_serial.py ARGS` with moto_server's arguments."""
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_LOCK = threading.RLock()  # re-entered: a transaction's puts call put_item
WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item",
          "execute_statement", "batch_execute_statement", "execute_transaction_statement")


def _serialized(f):
    def call(self, *args, **kwargs):
        with _LOCK:
            return f(self, *args, **kwargs)
    call.__name__ = f.__name__
    return call


for name in WRITES:
    if hasattr(DynamoDBBackend, name):
        setattr(DynamoDBBackend, name, _serialized(getattr(DynamoDBBackend, name)))

if __name__ == "__main__":
    main(sys.argv[1:])
