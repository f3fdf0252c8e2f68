#!/usr/bin/env python3
"""Create template.yaml's DynamoDB tables and SQS queues on moto, and print the
functions' environment resolved to them.

template.yaml is the one source of truth: the local stack and the tests use the
keys, indexes, queue settings and environment variable names it declares. Each
resource gets the local physical name ``<prefix>-<LogicalId>`` (``.fifo`` added
for a FIFO queue). Creation is idempotent: what exists is kept (queue attributes
are brought in line with the template).

Environment variables of every AWS::Serverless::Function (and the Globals) whose
value is ``!Ref <table or queue>`` or ``!GetAtt <queue>.Arn|QueueUrl|QueueName``
(``!GetAtt <table>.Arn`` too) are printed as KEY=value lines, or written to
--env-file. Other values (parameters, the API URL) are the caller's to set; they
are listed on stderr.

Run with .venv/moto/bin/python; the endpoint is AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")


# --- template loading --------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """A YAML loader that turns CloudFormation short tags into their long form:
    ``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``,
    ``!Sub s`` -> ``{"Fn::Sub": s}`` and so on for every ``!Tag``."""


def _construct_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        template = yaml.load(f, Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise SystemExit(f"{path}: not a CloudFormation template (no Resources)")
    return template


# --- helpers -----------------------------------------------------------------


def log(message: str) -> None:
    print(f"local_resources: {message}", file=sys.stderr)


def local_name(prefix: str, logical_id: str, resource: dict[str, Any]) -> str:
    name = f"{prefix}-{logical_id}"
    if resource["Type"] == QUEUE and _truthy(resource.get("Properties", {}).get("FifoQueue")):
        name += ".fifo"
    return name


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _attr_str(value: Any) -> str:
    """SQS attribute values are strings; booleans are lowercase."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def getatt_target(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and list(value) == ["Fn::GetAtt"]:
        target = value["Fn::GetAtt"]
        if isinstance(target, str):
            target = target.split(".", 1)
        if isinstance(target, list) and len(target) == 2 and all(isinstance(t, str) for t in target):
            return target[0], target[1]
    return None


def ref_target(value: Any) -> str | None:
    if isinstance(value, dict) and list(value) == ["Ref"] and isinstance(value["Ref"], str):
        return value["Ref"]
    return None


# --- DynamoDB ----------------------------------------------------------------


def create_table(ddb: Any, name: str, logical_id: str, props: dict[str, Any]) -> str:
    billing = props.get("BillingMode", "PROVISIONED")
    params: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": billing,
    }
    if billing == "PROVISIONED":
        params["ProvisionedThroughput"] = props.get(
            "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        )
    gsis = []
    for gsi in props.get("GlobalSecondaryIndexes", []):
        index = {k: gsi[k] for k in ("IndexName", "KeySchema", "Projection")}
        if billing == "PROVISIONED":
            index["ProvisionedThroughput"] = gsi.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        gsis.append(index)
    if gsis:
        params["GlobalSecondaryIndexes"] = gsis
    lsis = [
        {k: lsi[k] for k in ("IndexName", "KeySchema", "Projection")}
        for lsi in props.get("LocalSecondaryIndexes", [])
    ]
    if lsis:
        params["LocalSecondaryIndexes"] = lsis
    if "StreamSpecification" in props:
        params["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": props["StreamSpecification"]["StreamViewType"],
        }

    try:
        existing = ddb.describe_table(TableName=name)["Table"]
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        existing = None

    if existing is None:
        ddb.create_table(**params)
        ddb.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        action = "created"
    else:
        have_keys = sorted((k["AttributeName"], k["KeyType"]) for k in existing["KeySchema"])
        want_keys = sorted((k["AttributeName"], k["KeyType"]) for k in params["KeySchema"])
        have_gsis = sorted(i["IndexName"] for i in existing.get("GlobalSecondaryIndexes", []))
        want_gsis = sorted(i["IndexName"] for i in gsis)
        if have_keys != want_keys or have_gsis != want_gsis:
            raise SystemExit(
                f"table {name} exists with other keys or indexes than template.yaml's "
                f"{logical_id}: run with --reset (or restart moto)"
            )
        action = "exists"

    ttl = props.get("TimeToLiveSpecification")
    if ttl and _truthy(ttl.get("Enabled")):
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    return action


# --- SQS ---------------------------------------------------------------------

# CloudFormation properties that are SQS attributes of the same name.
QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoThroughputLimit",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


def references(value: Any) -> set[str]:
    """Logical ids that a property value refers to with Ref or GetAtt."""
    if isinstance(value, list):
        return set().union(*map(references, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    target = getatt_target(value) or ((ref_target(value), "") if ref_target(value) else None)
    if target:
        return {target[0]}
    return set().union(*map(references, value.values())) if value else set()


def create_queue(
    sqs: Any, name: str, logical_id: str, props: dict[str, Any], resolve: Any
) -> tuple[str, str, str]:
    attributes = {k: _attr_str(props[k]) for k in QUEUE_ATTRIBUTES if k in props}
    redrive = props.get("RedrivePolicy")
    if redrive is not None:
        if isinstance(redrive, str):
            redrive = json.loads(redrive)
        target = redrive["deadLetterTargetArn"]
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": target if isinstance(target, str) else resolve(target),
                "maxReceiveCount": int(redrive["maxReceiveCount"]),
            }
        )

    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as err:
        if "NonExistentQueue" not in err.response["Error"]["Code"]:
            raise
        url = None

    if url is None:
        create_attributes = dict(attributes)
        if _truthy(props.get("FifoQueue")):
            create_attributes["FifoQueue"] = "true"
        url = sqs.create_queue(QueueName=name, Attributes=create_attributes)["QueueUrl"]
        action = "created"
    else:
        if attributes:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        action = "exists"
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn, action


# --- main --------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--prefix", default="idlcm", help="local physical name prefix")
    parser.add_argument("--env-file", type=Path, help="write KEY=value lines here, not stdout")
    parser.add_argument("--reset", action="store_true", help="POST /moto-api/reset first")
    args = parser.parse_args()

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        log("AWS_ENDPOINT_URL is not set (the moto server's URL, e.g. http://127.0.0.1:5055)")
        return 2
    endpoint = endpoint.rstrip("/")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    if args.reset:
        request = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                log(f"reset failed: HTTP {response.status}")
                return 1
        log(f"reset {endpoint}")

    template = load_template(args.template)
    resources: dict[str, dict[str, Any]] = template["Resources"]
    session = boto3.session.Session(region_name=region)
    ddb = session.client("dynamodb", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)

    # Logical id -> {"Ref": ..., attribute: ...} of what exists locally.
    physical: dict[str, dict[str, str]] = {}

    for logical_id, resource in resources.items():
        if resource.get("Type") != TABLE:
            continue
        name = local_name(args.prefix, logical_id, resource)
        action = create_table(ddb, name, logical_id, resource.get("Properties", {}))
        arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
        physical[logical_id] = {"Ref": name, "Arn": arn}
        log(f"table {name} ({logical_id}): {action}")

    def resolve(value: Any) -> str:
        target = getatt_target(value)
        if target and target[0] in physical and target[1] in physical[target[0]]:
            return physical[target[0]][target[1]]
        ref = ref_target(value)
        if ref and ref in physical:
            return physical[ref]["Ref"]
        raise ValueError(f"cannot resolve {value!r} locally")

    # Queues, dead-letter targets first.
    pending = {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource.get("Type") == QUEUE
    }
    while pending:
        ready = [
            logical_id
            for logical_id, resource in pending.items()
            if all(
                dep in physical or dep not in pending
                for dep in references(resource.get("Properties", {}).get("RedrivePolicy"))
            )
        ]
        if not ready:
            raise SystemExit(f"circular queue dependencies among {sorted(pending)}")
        for logical_id in ready:
            resource = pending.pop(logical_id)
            name = local_name(args.prefix, logical_id, resource)
            url, arn, action = create_queue(
                sqs, name, logical_id, resource.get("Properties", {}), resolve
            )
            # Ref of an SQS queue is its URL.
            physical[logical_id] = {"Ref": url, "Arn": arn, "QueueUrl": url, "QueueName": name}
            log(f"queue {name} ({logical_id}): {action}")

    # The functions' environment.
    env: dict[str, str] = {}
    unresolved: set[str] = set()
    global_vars = (
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    for logical_id, resource in resources.items():
        if resource.get("Type") not in FUNCTION_TYPES:
            continue
        variables = dict(global_vars)
        variables.update(
            resource.get("Properties", {}).get("Environment", {}).get("Variables", {}) or {}
        )
        for key, value in variables.items():
            if isinstance(value, (str, int, float, bool)):
                # A literal: the template's value is the local one too.
                resolved = _attr_str(value)
            else:
                try:
                    resolved = resolve(value)
                except ValueError:
                    unresolved.add(key)
                    continue
            if key in env and env[key] != resolved:
                raise SystemExit(f"{key} differs between functions: {env[key]} / {resolved}")
            env[key] = resolved
    unresolved -= set(env)

    lines = "".join(f"{key}={shlex.quote(value)}\n" for key, value in sorted(env.items()))
    if args.env_file:
        args.env_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.env_file.with_name(args.env_file.name + ".tmp")
        tmp.write_text(lines, encoding="utf-8")
        tmp.replace(args.env_file)
        log(f"wrote {len(env)} variable(s) to {args.env_file}")
    else:
        sys.stdout.write(lines)
    if unresolved:
        log(f"left to the caller (not local resources): {', '.join(sorted(unresolved))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
