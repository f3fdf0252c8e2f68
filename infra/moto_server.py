"""Starts the moto server (the DynamoDB + SQS emulator) for local runs and tests, with fixes
that leave its behaviour unchanged (save the 1 MB page limit's count, under 5) and make its
costs those of the services it emulates:

1. moto 5.2.5 deep-copies the whole table once per *action* of a transaction (to roll back on
   failure), so a 100-action transaction on a table of a few thousand items takes ~13 s and
   even a 4-action one took 1.4 s (17 s seen) with 2,700 items, long enough for clients to
   time out. Here a transaction copies only the items it touches, and puts them back if it
   fails.
2. That copy runs while other request threads may write the same table ("dictionary changed
   size during iteration", an HTTP 500). Writes to DynamoDB are serialised with one lock.
3. Its SQS send validates each FIFO message by reading the queue's attributes, which counts
   every message in the queue three times over (for ApproximateNumberOfMessages*): sending
   1,000 messages took ~70 s. While a message is sent, attribute reads return
   the plain attribute asked for, without the counts.
4. A Query on a global secondary index walked every item of the table and then the whole
   partition up to ExclusiveStartKey: a 20-item page of Activity took 2.5 s with 100,000 jobs
   stored. Each GSI now keeps its partitions sorted (rebuilt after writes) and a Query
   bisects to its page, as DynamoDB reads a key range.
5. A Query of the table itself sorted the whole table first, for every page: the Activity
   page (one integration's partition) took 2 s with 100,000 jobs stored. Each partition is now
   kept sorted (rebuilt after writes) and a Query bisects to its page, as fix 4 does.
6. Two ReceiveMessage calls at once could hand out two messages of one FIFO group together
   (moto checks the groups in flight against a snapshot taken when the receive starts, without
   a lock): two jobs of one user at once, which SQS FIFO never does. Receives, sends, deletes
   and visibility changes are serialised with one lock.

Everything else is moto as published; arguments are moto_server's. With
IDLCM_MOTO_FAST_PATH_COUNTS=FILE, the server keeps in FILE (JSON) how many queries each fast
path answered, by operator: infra/moto_patch_check.py uses it to know its queries went
through them, and not through moto's own code, which would compare moto with itself.
"""

import bisect
import copy
import json
import os
import sys
import threading
import time

import moto.dynamodb.models as models
from moto.core.utils import camelcase_to_underscores
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table
from moto.server import main
from moto.sqs.models import Queue, SQSBackend

_local = threading.local()
_writes = threading.RLock()


class _NoTableCopies:
    """`copy` as moto's DynamoDB models see it: during a transaction a Table is not
    deep-copied for rollback (moto copies the whole table once per action); the transaction
    keeps its own undo log of the items it touches instead."""

    def __getattr__(self, name):
        return getattr(copy, name)

    def deepcopy(self, obj, memo=None):
        if getattr(_local, "in_transaction", False) and memo is None and isinstance(obj, Table):
            return obj  # moto's rollback puts the same table back: the undo log restores items
        return copy.deepcopy(obj, memo)


models.copy = _NoTableCopies()

_transact = DynamoDBBackend.transact_write_items


def _action_key(table, op):
    """(hash, range) of the item one transaction action touches, or None if malformed."""
    attrs = op.get("Item") if "Item" in op else op.get("Key")
    try:
        hash_value = DynamoType(attrs[table.hash_key_attr])
        range_value = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
    except Exception:  # moto's own code gives the error for a malformed action
        return None
    return hash_value, range_value


def _transact_write_items(self, transact_items):
    with _writes:
        undo = []  # (table, hash, range, item before the transaction or None), in order
        for action in transact_items if isinstance(transact_items, list) else []:
            op = next(iter(action.values()), None) if isinstance(action, dict) else None
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            key = _action_key(table, op) if table is not None else None
            if key is not None:
                before = table.get_item(*key)
                undo.append((table, key[0], key[1], copy.deepcopy(before)))
        _local.in_transaction = True
        try:
            return _transact(self, transact_items)
        except BaseException:
            # Last action first, so an item named twice ends as it was before the first.
            for table, hash_value, range_value, before in reversed(undo):
                if before is None:
                    table.delete_item(hash_value, range_value)
                elif range_value is not None:
                    table.items[hash_value][range_value] = before
                else:
                    table.items[hash_value] = before
            raise
        finally:
            _local.in_transaction = False


DynamoDBBackend.transact_write_items = _transact_write_items


def _serialised(cls, name, lock):
    """`cls.name` run under `lock`. The DynamoDB writes take `_writes` through `_bump` (fix 4),
    which also counts them; fix 6 puts the SQS calls under their own lock with it."""
    original = getattr(cls, name)

    def call(*args, **kwargs):
        with lock:
            return original(*args, **kwargs)

    setattr(cls, name, call)


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

# --- 6. One receiver at a time ----------------------------------------------------------------
# moto picks the messages of a ReceiveMessage without a lock, against a snapshot of the FIFO
# groups in flight taken when the receive starts. Two receives at once (the test harness polls
# with four) can then hand out two messages of one group together: two jobs of one user run at
# once, which SQS FIFO never does. Its deduplication reads the queue unlocked too. Here every
# pick, send, delete and visibility change of SQS messages runs under one lock; a long poll
# waits outside it.

_sqs = threading.RLock()
_receive = SQSBackend.receive_message


def _receive_message(self, queue_name, count, wait_seconds_timeout, visibility_timeout,
                     message_attribute_names=None):
    deadline = time.monotonic() + (wait_seconds_timeout or 0)
    while True:
        with _sqs:
            result = _receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
        remaining = deadline - time.monotonic()
        if result or remaining <= 0:
            return result
        waited = time.monotonic()
        self.get_queue(queue_name).wait_for_messages(min(remaining, 1))
        if time.monotonic() - waited < 0.005:
            # Visible messages, but none to hand out (their groups are in flight): do not spin.
            time.sleep(min(0.02, max(remaining, 0)))


SQSBackend.receive_message = _receive_message


for _name in ("send_message", "send_message_batch", "delete_message", "delete_message_batch",
              "change_message_visibility", "change_message_visibility_batch", "purge_queue"):
    if hasattr(SQSBackend, _name):
        _serialised(SQSBackend, _name, _sqs)

# --- 4. Global secondary index queries as key-range reads ---------------------------------
# moto answers a GSI Query by walking every item of the table, then sorting the partition
# and skipping to ExclusiveStartKey item by item: a page costs O(table). DynamoDB reads the
# page from the index. Here each GSI keeps, per partition value, its items sorted by the
# index order (rebuilt lazily after a write), and a Query bisects to its start: O(log n +
# page). Only the plain case takes this path (one hash and one range key, no legacy
# QueryFilter); everything else, and every error, is moto's own code.

_generation = [0]
_gsi_cache = {}
_query = Table.query
_RANGE_OPS = {"EQ", "LT", "LE", "GT", "GE", "BETWEEN", "BEGINS_WITH"}
# moto's key-condition parser hands comparisons over as written: "=", "<", … (and BETWEEN,
# BEGINS_WITH by name).
_SYMBOLS = {"=": "EQ", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE"}
_COUNTS_FILE = os.environ.get("IDLCM_MOTO_FAST_PATH_COUNTS")
_counts = {}


def _counted(kind, op):
    """Records one answer of a fast path ("gsi" or "table") for `op`, when asked to."""
    if not _COUNTS_FILE:
        return
    with _writes:
        key = f"{kind}:{op or 'NONE'}"
        _counts[key] = _counts.get(key, 0) + 1
        with open(_COUNTS_FILE, "w") as f:
            json.dump(_counts, f)


def _bump(method):
    """A write under the write lock (fix 2: every DynamoDB write is serialised), which moves
    the generation before it lets go: the count never goes back, and no cache is built between
    a write and its count."""
    def write(*args, **kwargs):
        with _writes:
            try:
                return method(*args, **kwargs)
            finally:
                _generation[0] += 1

    return write


DynamoDBBackend.transact_write_items = _bump(DynamoDBBackend.transact_write_items)
for _name in ("put_item", "update_item", "delete_item", "batch_write_item", "create_table", "delete_table",
              "update_table"):
    if hasattr(DynamoDBBackend, _name):
        setattr(DynamoDBBackend, _name, _bump(getattr(DynamoDBBackend, _name)))


def _partition_key(value):
    return (value.type, repr(value.value))


def _index_partitions(table, index, hash_attr, range_attr, sort_attrs):
    """{partition: (sort keys, items)} of one GSI, current as of the last write."""
    cache_key = (id(table), index.name)
    cached = _gsi_cache.get(cache_key)
    if cached is not None and cached[0] == _generation[0] and cached[1] is table:
        return cached[2]
    with _writes:
        generation = _generation[0]
        groups = {}
        for item in table.all_items():
            hash_value, range_value = item.attrs.get(hash_attr), item.attrs.get(range_attr)
            if not hash_value or not range_value or any(a not in item.attrs for a in sort_attrs):
                continue  # a sparse index holds only the items that have its keys
            groups.setdefault(_partition_key(hash_value), []).append(item)
        partitions = {}
        for key, items in groups.items():
            items.sort(key=lambda i: tuple(i.attrs[a] for a in sort_attrs))
            partitions[key] = ([tuple(i.attrs[a] for a in sort_attrs) for i in items], items)
    _gsi_cache[cache_key] = (generation, table, partitions)
    return partitions


def _range_bounds(sort_keys, op, values):
    """The slice of a partition whose index range key (sort key position 1) satisfies op."""
    def left(v):
        return bisect.bisect_left(sort_keys, v, key=lambda k: k[1])

    def right(v):
        return bisect.bisect_right(sort_keys, v, key=lambda k: k[1])

    n = len(sort_keys)
    if op is None:
        return 0, n
    if op == "EQ":
        return left(values[0]), right(values[0])
    if op == "LT":
        return 0, left(values[0])
    if op == "LE":
        return 0, right(values[0])
    if op == "GT":
        return right(values[0]), n
    if op == "GE":
        return left(values[0]), n
    if op == "BETWEEN":
        return left(values[0]), right(values[1])
    # BEGINS_WITH on a string: [prefix, prefix + the largest code point). (A key that goes on
    # with U+10FFFF itself falls outside; none of ours has one.)
    prefix = values[0]
    return left(prefix), left(DynamoType({"S": prefix.value + "\U0010ffff"}))


def _fast_query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                scan_index_forward, projection_expressions, index_name=None, consistent_read=False,
                filter_expression=None, hash_key_conditions=None, range_key_conditions=None,
                **filter_kwargs):
    args = (hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
            projection_expressions, index_name, consistent_read, filter_expression)
    range_comparison = _SYMBOLS.get(range_comparison, range_comparison)
    kwargs = dict(hash_key_conditions=hash_key_conditions, range_key_conditions=range_key_conditions,
                  **filter_kwargs)
    if not index_name:
        return _table_query(self, args, kwargs, hash_key, range_comparison, range_objs, limit,
                            exclusive_start_key, scan_index_forward, projection_expressions,
                            filter_expression, hash_key_conditions, range_key_conditions, filter_kwargs)
    index = {i.name: i for i in self.global_indexes}.get(index_name) if index_name else None
    hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"] if index else []
    ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"] if index else []
    plain = (
        index is not None and not consistent_read and not filter_kwargs and len(hashes) == 1
        and len(ranges) == 1 and self.range_key_attr is not None
        and [a for a, _ in (hash_key_conditions or [])] == hashes
        and (not range_key_conditions or [c[0] for c in range_key_conditions] == ranges)
        and (range_comparison is None or range_comparison in _RANGE_OPS)
        and (range_comparison != "BEGINS_WITH" or range_objs[0].type == "S")
    )
    if not plain:
        return _query(self, *args, **kwargs)
    hash_attrs, range_attrs = [hashes[0], self.hash_key_attr], [ranges[0], self.range_key_attr]
    sort_attrs = self._generate_attr_to_sort_by(hash_attrs, range_attrs)
    if len(sort_attrs) != 4:
        return _query(self, *args, **kwargs)
    start_key = None
    if exclusive_start_key is not None:
        if any(a not in exclusive_start_key for a in sort_attrs):
            return _query(self, *args, **kwargs)
        start_key = tuple(DynamoType(exclusive_start_key[a]) for a in sort_attrs)

    partitions = _index_partitions(self, index, hashes[0], ranges[0], sort_attrs)
    sort_keys, items = partitions.get(_partition_key(hash_key_conditions[0][1]), ([], []))
    _counted("gsi", range_comparison)
    return _page(self, index, sort_keys, items, start_key, range_comparison, range_objs, limit,
                 scan_index_forward, projection_expressions, filter_expression)


def _page(table, index, sort_keys, items, start_key, range_comparison, range_objs, limit,
          scan_index_forward, projection_expressions, filter_expression):
    """One page of a partition sorted by `sort_keys` (the key range read), as moto answers it."""
    index_name = index.name if index is not None else None
    lo, hi = _range_bounds(sort_keys, range_comparison, range_objs)
    if scan_index_forward is False:
        if start_key is not None:
            hi = min(hi, bisect.bisect_left(sort_keys, start_key))
        positions = range(hi - 1, lo - 1, -1)
    else:
        if start_key is not None:
            lo = max(lo, bisect.bisect_right(sort_keys, start_key))
        positions = range(lo, hi)

    results, size, last_evaluated_key = [], 0, None
    for position in positions:
        item = items[position]
        if len(results) == limit or size + item.size() > RESULT_SIZE_LIMIT:
            last_evaluated_key = table._get_last_evaluated_key(results[-1], index_name)
            break
        results.append(item)
        size += item.size()
    else:
        # As moto (and DynamoDB, which stops at Limit): a full page says "maybe more" while the
        # partition goes on, even when what follows is outside the key condition.
        more = hi < len(items) if scan_index_forward is not False else lo > 0
        if results and len(results) == limit and more:
            last_evaluated_key = table._get_last_evaluated_key(results[-1], index_name)
    scanned_count = len(results)
    results = copy.deepcopy(results)
    if index is not None:
        results = [index.project(r) for r in results]
    if filter_expression is not None:
        results = [r for r in results if filter_expression.expr(r)]
    if projection_expressions:
        results = [r.project(projection_expressions) for r in results]
    return results, scanned_count, last_evaluated_key


# --- 5. Base-table queries as key-range reads --------------------------------------------
# moto answers a Query of the table itself by sorting every item of the table (`all_items`),
# keeping the partition's, sorting them again and skipping to ExclusiveStartKey item by item:
# the Activity page, a Query of one integration's partition, took 2 s with 100,000 jobs stored
# (docs/console.md). Here each partition's items are sorted once per generation of writes and
# a Query bisects to its page, as for the indexes above. Plain case only (a range key, a
# string key condition, no legacy QueryFilter); everything else is moto's own code. One
# difference is left, in both fast paths: moto counts its 1 MB page limit over items outside
# the key range too, and may stop a page early for them; here, as on DynamoDB, only the items
# read count. Our items are a few KB at most, so no page of ours comes near it.

_partitions = {"generation": None, "sorted": {}}


def _table_partition(table, hash_key):
    """(sort keys, items) of one partition of the table, in range-key order, as of the last
    write. Partitions sorted under an older generation are dropped, so what is kept is at most
    the partitions read since the last write."""
    with _writes:
        if _partitions["generation"] != _generation[0]:
            _partitions["generation"], _partitions["sorted"] = _generation[0], {}
        cache_key = (id(table), _partition_key(hash_key))
        cached = _partitions["sorted"].get(cache_key)
        if cached is not None and cached[0] is table:
            return cached[1]
        partition = table.items.get(hash_key)
        items = sorted(partition.values(), key=lambda i: i.range_key) if partition else []
        result = ([(i.hash_key, i.range_key) for i in items], items)
        _partitions["sorted"][cache_key] = (table, result)
        return result


def _table_query(self, args, kwargs, hash_key, range_comparison, range_objs, limit,
                 exclusive_start_key, scan_index_forward, projection_expressions,
                 filter_expression, hash_key_conditions, range_key_conditions, filter_kwargs):
    plain = (
        not filter_kwargs and self.range_key_attr is not None and hash_key is not None
        and [a for a, _ in (hash_key_conditions or [])] == [self.hash_key_attr]
        and (not range_key_conditions or [c[0] for c in range_key_conditions] == [self.range_key_attr])
        and (range_comparison is None or range_comparison in _RANGE_OPS)
        and all(o.type == "S" for o in (range_objs or []))
        and self.range_key_type == "S"
    )
    if not plain:
        return _query(self, *args, **kwargs)
    start_key = None
    if exclusive_start_key is not None:
        if any(a not in exclusive_start_key for a in (self.hash_key_attr, self.range_key_attr)):
            return _query(self, *args, **kwargs)
        start_key = (DynamoType(exclusive_start_key[self.hash_key_attr]),
                     DynamoType(exclusive_start_key[self.range_key_attr]))
    sort_keys, items = _table_partition(self, hash_key)
    _counted("table", range_comparison)
    return _page(self, None, sort_keys, items, start_key, range_comparison, range_objs, limit,
                 scan_index_forward, projection_expressions, filter_expression)


Table.query = _fast_query


if __name__ == "__main__":
    main(sys.argv[1:])
