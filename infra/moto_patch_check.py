#!/usr/bin/env python3
"""Checks that infra/moto_server.py's query paths (fixes 4 and 5 in its docstring: the GSI's
and the table's own) and its transaction rollback (fix 1) answer exactly as moto's own code:
the same random table, writes and queries (every key condition operator, both directions,
Limit, FilterExpression, pagination with ExclusiveStartKey; puts, deletes, UpdateItem
SET/REMOVE of the index keys and TransactWriteItems between queries) go to a patched and a
plain moto, and every page must be identical, LastEvaluatedKey and ScannedCount included.

First, fix 6 alone on the patched server: concurrent receivers of one FIFO queue get each
message once (plain moto can hand one message to two of them).

Usage: moto_patch_check.py PATCHED_URL PLAIN_URL [SEEDS [COUNTS_FILE]]

COUNTS_FILE: the patched server's IDLCM_MOTO_FAST_PATH_COUNTS. Given, the check also fails
unless every key-condition operator, on the index and on the table, was answered by a fast
path: identical pages prove nothing about a query the patched server left to moto's own code.
"""

import json
import random
import sys
import threading
import time

import boto3


def receives_once(url, threads=8, messages=300):
    """Fix 6: receivers polling one FIFO queue at once get each message once, and never two of
    one group at a time. 300 messages in 60 groups; 8 threads receive (up to 10, long poll),
    record and delete what they get. Plain moto handed messages of one group to two receivers
    at once in 2 of 3 runs (2026-12-05); the patched server in none of 3."""
    sqs = client(url, "sqs")
    queue = sqs.create_queue(QueueName="moto-patch-check-receives.fifo",
                             Attributes={"FifoQueue": "true", "VisibilityTimeout": "300"})["QueueUrl"]
    for start in range(0, messages, 10):
        sqs.send_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(i), "MessageBody": str(i), "MessageGroupId": f"g{i % 60}",
             "MessageDeduplicationId": f"m{i}"} for i in range(start, start + 10)])
    got, lock, in_flight, overlaps = [], threading.Lock(), set(), []

    def receive():
        own = client(url, "sqs")
        while True:
            out = own.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            batch = out.get("Messages", [])
            if not batch:
                return
            groups = {int(m["Body"]) % 60 for m in batch}
            with lock:
                got.extend(m["Body"] for m in batch)
                overlaps.extend(groups & in_flight)
                in_flight.update(groups)
            time.sleep(0.01)  # the job runs
            with lock:
                in_flight.difference_update(groups)
            for m in batch:
                own.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])

    workers = [threading.Thread(target=receive) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    twice = sorted({b for b in got if got.count(b) > 1}, key=int)
    if twice or len(got) != messages or overlaps:
        print(f"moto-patch-check: {len(got)} receipts of {messages} messages; received more than "
              f"once: {twice[:10]}; groups handed to two receivers at once: {sorted(set(overlaps))[:10]}",
              file=sys.stderr)
        return False
    print(f"moto-patch-check: {threads} concurrent receivers got each of {messages} messages once")
    return True


def client(url, service="dynamodb"):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="check", aws_secret_access_key="check")


def run(seed, patched, plain):
    rnd = random.Random(seed)
    clients = (patched, plain)
    name = f"moto-patch-check-{seed}"
    for c in clients:
        c.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "gpk", "gsk")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{
                "IndexName": "gsi",
                "KeySchema": [{"AttributeName": "gpk", "KeyType": "HASH"}, {"AttributeName": "gsk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }])

    def put(i):
        item = {"pk": {"S": f"P{rnd.randint(0, 5)}"}, "sk": {"S": f"s{i:05d}"}, "v": {"N": str(i)}}
        if rnd.random() < 0.8:  # the index is sparse: some items lack its keys
            item["gpk"] = {"S": f"G{rnd.randint(0, 3)}"}
            item["gsk"] = {"S": f"k{rnd.randint(0, 40):03d}"}
        for c in clients:
            c.put_item(TableName=name, Item=item)

    def pages(c, query, index=True):
        out, start = [], None
        while True:
            args = dict(query, **({"ExclusiveStartKey": start} if start else {}))
            args.update({"IndexName": "gsi"} if index else {})
            r = c.query(TableName=name, **args)
            out.append((r["Items"], r.get("LastEvaluatedKey"), r["ScannedCount"], r["Count"]))
            start = r.get("LastEvaluatedKey")
            if not start:
                return out

    for i in range(300):
        put(i)
    for round_ in range(100):
        query = random_query(rnd, "gpk", f"G{rnd.randint(0, 4)}", "gsk", lambda: f"k{rnd.randint(0, 40):03d}", 3)
        got, want = pages(patched, query), pages(plain, query)
        if got != want:
            print(f"moto-patch-check: seed {seed}, query {round_} differs: {query}", file=sys.stderr)
            return False
        # The same of the table itself (fix 5): a partition, its sort key's range.
        table_query = table_query_of(rnd)
        got, want = pages(patched, table_query, index=False), pages(plain, table_query, index=False)
        if got != want:
            print(f"moto-patch-check: seed {seed}, table query {round_} differs: {table_query}",
                  file=sys.stderr)
            return False
        if round_ % 10 == 0:  # writes between queries: the index must follow them
            for i in range(300 + 5 * round_, 305 + 5 * round_):
                put(i)
            for c in clients:
                c.delete_item(TableName=name, Key={"pk": {"S": "P1"}, "sk": {"S": f"s{round_:05d}"}})
            # UpdateItem and TransactWriteItems move items into, within and out of the sparse
            # index, as the app's job rows do (SET on requeue, REMOVE when a worker starts).
            updates = []
            for _ in range(6):
                key = {"pk": {"S": f"P{rnd.randint(0, 5)}"}, "sk": {"S": f"s{rnd.randint(0, 299):05d}"}}
                if rnd.random() < 0.5:
                    updates.append({"Key": key, "UpdateExpression": "SET gpk = :p, gsk = :k",
                                    "ExpressionAttributeValues": {":p": {"S": f"G{rnd.randint(0, 3)}"},
                                                                  ":k": {"S": f"k{rnd.randint(0, 40):03d}"}}})
                else:
                    updates.append({"Key": key, "UpdateExpression": "REMOVE gpk, gsk"})
            for c in clients:
                for u in updates[:3]:
                    c.update_item(TableName=name, **u)
                c.transact_write_items(TransactItems=[{"Update": dict(u, TableName=name)} for u in updates[3:]])
            # A cancelled transaction (fix 1: the undo log instead of a table copy) leaves every
            # item as it was: puts of new and existing items, updates and deletes, then a check
            # that fails; and one that names an item twice (a validation error).
            rows = [{"pk": {"S": f"P{rnd.randint(0, 5)}"}, "sk": {"S": f"s{rnd.randint(0, 320):05d}"}}
                    for _ in range(4)]
            rows = [dict(r) for r in {(r["pk"]["S"], r["sk"]["S"]): r for r in rows}.values()]
            actions = [{"Put": {"TableName": name, "Item": dict(rows[0], v={"N": "-1"}, gpk={"S": "G0"},
                                                                    gsk={"S": "k000"})}}]
            actions += [{"Update": {"TableName": name, "Key": r, "UpdateExpression": "SET v = :v",
                                    "ExpressionAttributeValues": {":v": {"N": "-2"}}}} for r in rows[1:-1]]
            actions += [{"Delete": {"TableName": name, "Key": rows[-1]}}] if len(rows) > 1 else []
            missing = {"pk": {"S": "P9"}, "sk": {"S": f"absent{round_}"}}
            doubled = actions + [{"Delete": {"TableName": name, "Key": rows[0]}}]
            for c in clients:
                for items in (actions + [{"ConditionCheck": {"TableName": name, "Key": missing,
                                                             "ConditionExpression": "attribute_exists(pk)"}}],
                              doubled):
                    try:
                        c.transact_write_items(TransactItems=items)
                    except c.exceptions.ClientError:
                        pass
            if scan_all(patched, name) != scan_all(plain, name):
                print(f"moto-patch-check: seed {seed}, round {round_}: a cancelled transaction left "
                      "the tables different", file=sys.stderr)
                return False
    return True


def table_query_of(rnd):
    """A random Query of the table's own keys: any partition (P9 is empty), sometimes a
    consistent read."""
    query = random_query(rnd, "pk", f"P{rnd.choice([0, 1, 2, 3, 4, 5, 9])}", "sk",
                         lambda: f"s{rnd.randint(0, 330):05d}", rnd.randint(1, 4))
    query["ConsistentRead"] = rnd.random() < 0.5
    return query


def random_query(rnd, hash_attr, hash_value, range_attr, range_value, prefix):
    """A Query of one partition with any sort-key condition (or none; `begins_with` takes the
    first `prefix` characters of a value), either direction, any page size, sometimes a filter."""
    cond, values = f"{hash_attr} = :h", {":h": {"S": hash_value}}
    a, b = sorted(range_value() for _ in range(2))
    op = rnd.choice([None, "=", "<", "<=", ">", ">=", "between", "begins"])
    if op in ("=", "<", "<=", ">", ">="):
        cond += f" AND {range_attr} {op} :a"
        values[":a"] = {"S": a}
    elif op == "between":
        cond += f" AND {range_attr} BETWEEN :a AND :b"
        values.update({":a": {"S": a}, ":b": {"S": b}})
    elif op == "begins":
        cond += f" AND begins_with({range_attr}, :a)"
        values[":a"] = {"S": a[:prefix]}
    query = {"KeyConditionExpression": cond, "ExpressionAttributeValues": values,
             "ScanIndexForward": rnd.random() < 0.5, "Limit": rnd.choice([1, 3, 7, 50, 1000])}
    if rnd.random() < 0.3:
        query["FilterExpression"] = "v > :n"
        values[":n"] = {"N": str(rnd.randint(0, 300))}
    return query


def scan_all(c, name):
    items, kwargs = [], {}
    while True:
        page = c.scan(TableName=name, ConsistentRead=True, **kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


OPERATORS = ("NONE", "EQ", "LT", "LE", "GT", "GE", "BETWEEN", "BEGINS_WITH")


def main():
    patched, plain = client(sys.argv[1]), client(sys.argv[2])
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    if not receives_once(sys.argv[1]):
        return 1
    for seed in range(1, seeds + 1):
        if not run(seed, patched, plain):
            return 1
    if len(sys.argv) > 4:
        with open(sys.argv[4]) as f:
            counts = json.load(f)
        missing = [f"{kind}:{op}" for kind in ("gsi", "table") for op in OPERATORS
                   if not counts.get(f"{kind}:{op}")]
        if missing:
            print(f"moto-patch-check: no query with {', '.join(missing)} went through a fast path "
                  f"(answered by moto's own code, so compared with itself): {counts}", file=sys.stderr)
            return 1
        print(f"moto-patch-check: fast paths answered every operator: {counts}")
    print(f"moto-patch-check: GSI and table queries and cancelled transactions identical to moto's own in "
          f"{seeds} x 100 query series")
    return 0


if __name__ == "__main__":
    sys.exit(main())
