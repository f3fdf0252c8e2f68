#!/usr/bin/env python3
"""Feeds the scim-api function real API Gateway HTTP API v2 events through the local Lambda
runtime emulator (`cargo lambda watch`, started by infra/run.sh) with `cargo lambda invoke
--data-file`, and checks the SCIM answers: the path a request takes in AWS, from the event
JSON to the function's response object.

Usage: lambda_event_test.py STATE_DIR API_PORT
  STATE_DIR  the run.sh state directory (local.json: the demo integration and its token)
  API_PORT   the port cargo lambda watch listens on (127.0.0.1)

The events are tests/events/*.json with @PLACEHOLDERS@ for what only the running stack
knows (integration id, token) and what must be fresh on each run (userName, externalId).
Then the functions' own log lines in the emulator's log are checked: JSON, the invocation's
requestId on each request line, none of the tokens, password or userName they handled.
"""

import json
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARGO_LAMBDA = ROOT / ".venv/tools/bin/cargo-lambda"


def fail(message: str) -> None:
    print(f"lambda-event: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def render(name: str, values: dict[str, str], out_dir: Path) -> Path:
    text = (ROOT / "tests/events" / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    event = json.loads(text)
    if event.get("body") is not None:
        # What API Gateway would send for this body.
        event["headers"]["content-length"] = str(len(event["body"].encode()))
    path = out_dir / name
    path.write_text(json.dumps(event), encoding="utf-8")
    return path


def invoke(port: str, event: Path) -> dict:
    # Over the integration's limit (a test that ran just before): wait as an IdP does, by
    # Retry-After, a few times.
    for _ in range(3):
        answer = invoke_once(port, event)
        if answer.get("statusCode") != 429:
            return answer
        headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
        wait = min(int(headers.get("retry-after", "2")), 15)
        print(f"lambda-event: {event.name}: 429, retrying after {wait} s")
        time.sleep(wait)
    return invoke_once(port, event)


def invoke_once(port: str, event: Path) -> dict:
    cmd = [
        str(CARGO_LAMBDA), "lambda", "invoke", "scim-api",
        "--invoke-address", "127.0.0.1", "--invoke-port", port,
        "--data-file", str(event), "--output-format", "json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        fail(f"cargo lambda invoke {event.name}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        fail(f"{event.name}: the function's answer is not JSON: {done.stdout[:300]}")
        raise


def body_of(response: dict, event: str, status: int) -> dict:
    if response.get("statusCode") != status:
        fail(f"{event}: statusCode {response.get('statusCode')}, expected {status}: {response.get('body')}")
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    if not headers.get("content-type", "").startswith("application/scim+json"):
        fail(f"{event}: content-type {headers.get('content-type')!r}, expected application/scim+json")
    return json.loads(response["body"])


def main() -> int:
    state_dir, port = Path(sys.argv[1]), sys.argv[2]
    local = json.loads((state_dir / "local.json").read_text(encoding="utf-8"))
    run = int(time.time() * 1000)
    user_name = f"event.fixture.{run}@example.com"
    values = {
        "INTEGRATION_ID": local["demo"]["id"],
        "SCIM_TOKEN": local["demo"]["scim_token"],
        "USER_NAME": user_name,
        "EXTERNAL_ID": f"00uevent{run}",
        "USER_NAME_QS": urllib.parse.quote(user_name, safe=""),
    }
    out_dir = state_dir / "events"
    out_dir.mkdir(parents=True, exist_ok=True)

    created = body_of(invoke(port, render("scim-create-user.json", values, out_dir)), "create", 201)
    if created.get("userName") != user_name or not created.get("id"):
        fail(f"create: unexpected user {created}")
    if "password" in created:
        fail("create: the password came back in the response")
    location = created.get("meta", {}).get("location", "")
    if not location.endswith(f"/scim/v2/{values['INTEGRATION_ID']}/Users/{created['id']}"):
        fail(f"create: meta.location {location!r}")

    listed = body_of(invoke(port, render("scim-filter-users.json", values, out_dir)), "filter", 200)
    if listed.get("schemas") != ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]:
        fail(f"filter: not a ListResponse: {listed}")
    ids = [r.get("id") for r in listed.get("Resources", [])]
    if listed.get("totalResults") != 1 or ids != [created["id"]]:
        fail(f"filter: expected exactly the created user, got {listed}")

    print(f"lambda-event: 2 API Gateway v2 events through cargo lambda invoke: 201 created {created['id']}, "
          "filter found it")
    check_function_logs(state_dir / "watch.log", local, user_name)
    return 0


def check_function_logs(path: Path, local: dict, user_name: str) -> None:
    """The functions' own lines in the emulator's log (every run so far: conformance, these
    events): JSON with the invocation's requestId, and none of the secrets or PII they saw."""
    planted = {
        "admin token": local["admin_token"],
        "SCIM token": local["demo"]["scim_token"],
        "password from the event": "not-logged-1!",
        "userName from the event": user_name,
    }
    ours = requests = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        # Every line: the functions' JSON and EMF lines, a panic's message, cargo-lambda's own.
        for what, value in planted.items():
            if value in line:
                fail(f"the {what} is in the emulator's log: {line[:300]}")
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # cargo-lambda's own lines
        if not isinstance(record, dict) or "_aws" in record:
            continue  # EMF metric lines
        ours += 1
        if record.get("message") == "request":
            requests += 1
            if not record.get("requestId") or record.get("request_id") != record.get("requestId"):
                fail(f"a request line without the Lambda requestId: {line[:300]}")
    if requests < 2:
        fail(f"the two events' request lines are not in {path} ({ours} JSON lines)")
    print(f"lambda-event: {ours} function log lines are JSON, carry their requestId, and hold no planted secret")


if __name__ == "__main__":
    sys.exit(main())
