"""Starts the moto server (the DynamoDB + SQS emulator) for local runs and tests, with two
fixes to its DynamoDB TransactWriteItems that leave its behaviour unchanged:

1. moto 5.2.5 deep-copies the whole table once per *action* of a transaction (to roll back on
   failure), so a 100-action transaction on a table of a few thousand items takes ~13 s and
   the cost grows with actions x items. Here the copy is made once per table per transaction.
2. That copy runs while other request threads may write the same table ("dictionary changed
   size during iteration", an HTTP 500). Writes to DynamoDB are serialised with one lock.
3. Its SQS send validates each FIFO message by reading the queue's attributes, which counts
   every message in the queue three times over (for ApproximateNumberOfMessages*): sending
   1,000 messages took ~70 s. While a message is sent, attribute reads return
   the plain attribute asked for, without the counts.

Everything else is moto as published; arguments are moto_server's.
"""

import copy
import sys
import threading

import moto.dynamodb.models as models
from moto.core.utils import camelcase_to_underscores
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.server import main
from moto.sqs.models import Queue, SQSBackend

_local = threading.local()
_writes = threading.RLock()


class _OncePerTransaction:
    """`copy` as moto's DynamoDB models see it: a Table deep-copied during a transaction is
    copied once (the backup loop copies the same unmodified table for every action)."""

    def __getattr__(self, name):
        return getattr(copy, name)

    def deepcopy(self, obj, memo=None):
        cache = getattr(_local, "tables", None)
        if cache is None or memo is not None or not isinstance(obj, Table):
            return copy.deepcopy(obj, memo)
        if id(obj) not in cache:
            cache[id(obj)] = (obj, copy.deepcopy(obj))
        return cache[id(obj)][1]


models.copy = _OncePerTransaction()

_transact = DynamoDBBackend.transact_write_items


def _transact_write_items(self, transact_items):
    with _writes:
        _local.tables = {}
        try:
            return _transact(self, transact_items)
        finally:
            _local.tables = None


DynamoDBBackend.transact_write_items = _transact_write_items


def _serialised(name):
    original = getattr(DynamoDBBackend, name)

    def write(self, *args, **kwargs):
        with _writes:
            return original(self, *args, **kwargs)

    setattr(DynamoDBBackend, name, write)


for _name in ("put_item", "update_item", "delete_item", "batch_write_item"):
    if hasattr(DynamoDBBackend, _name):
        _serialised(_name)

class _PlainAttributes:
    """A queue's attributes read one at a time, without counting its messages."""

    def __init__(self, queue):
        self._queue = queue

    def get(self, name, default=None):
        value = getattr(self._queue, camelcase_to_underscores(name), default)
        return str(value).lower() if isinstance(value, bool) else value


_queue_attributes = Queue.attributes


def _attributes(self):
    if getattr(_local, "plain_attributes", False):
        return _PlainAttributes(self)
    return _queue_attributes.fget(self)


Queue.attributes = property(_attributes)


def _plain_attributes_during(cls, name):
    original = getattr(cls, name)

    def call(*args, **kwargs):
        outer = getattr(_local, "plain_attributes", False)
        _local.plain_attributes = True
        try:
            return original(*args, **kwargs)
        finally:
            _local.plain_attributes = outer

    setattr(cls, name, call)


for _cls, _name in ((Queue, "add_message"), (SQSBackend, "_validate_message"), (SQSBackend, "send_message")):
    _plain_attributes_during(_cls, _name)

if __name__ == "__main__":
    main(sys.argv[1:])
