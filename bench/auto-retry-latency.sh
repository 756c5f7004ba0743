#!/usr/bin/env bash
# Latency and memory of the auto-retry binary, as a Lambda sandbox runs it: codebuild-local and
# moto on 127.0.0.1, the binary behind lambda-harness's Invoke API. For each of N seeded failed
# builds (a Docker Hub rate limit: transient) it invokes the function with the failure event
# (the full path: BatchGetBuilds, lineage lookup, ledger claim, hourly budgets, RetryBuild,
# lineage, complete), then delivers the same event again (the duplicate path: answered from the
# ledger). Prints first/median/p90 of both, the CodeBuild calls per failed build, and the
# function process's resident memory. A benchmark, not a test: nothing here asserts a time.
#   usage: bench/auto-retry-latency.sh [release|debug] [N]     (make bench runs it on release)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile=${1:-release}
n=${2:-100}
py="$root/.venv/bin/python3"
dbg="$root/target/debug"
fn_bin="$root/target/$profile/auto-retry"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
require_executables "$dbg/codebuild-local" "$dbg/lambda-harness" "$fn_bin" "$root/.venv/bin/moto_server"

start_emulator
start_moto
delay_queue="$("$py" - "$moto" <<'PY'
import sys, time, boto3
def client(service):
    return boto3.client(service, endpoint_url=sys.argv[1], region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench")
for _ in range(300):
    try:
        url = client("sqs").create_queue(QueueName="autopilot-delay")["QueueUrl"]
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("moto did not start")
client("dynamodb").create_table(TableName="autopilot-ledger", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
print(url)
PY
)"
cat >"$work/autopilot.toml" <<'TOML'
[account]
hourly_retry_limit = 100000
[[projects]]
name = "bench"
[projects.retry]
backoff_seconds = 0
hourly_budget = 100000
TOML
"$dbg/lambda-harness" --port 0 --function "auto-retry=$fn_bin" \
  --env "AWS_ENDPOINT_URL=$moto" --env "AWS_ENDPOINT_URL_CODEBUILD=$emulator" \
  --env AWS_REGION=us-east-1 --env AWS_ACCESS_KEY_ID=autopilot-auto-retry \
  --env AWS_SECRET_ACCESS_KEY=bench --env "AUTOPILOT_CONFIG_URI=file:$work/autopilot.toml" \
  --env AUTOPILOT_PROJECT_PATTERNS='*' --env AUTOPILOT_LEDGER_TABLE=autopilot-ledger \
  --env "AUTOPILOT_DELAY_QUEUE_URL=$delay_queue" \
  --env AUTOPILOT_OWN_INITIATOR=autopilot-auto-retry >"$work/h.out" 2>/dev/null & pids+=("$!")
harness="$(wait_url "$work/h.out")"

"$py" - "$emulator" "$harness" "$root/tests/event_pattern/events/build-state-failed-provisioning.json" \
  "$n" "$profile" "$moto_port" <<'PY'
import json, statistics, sys, time, urllib.request
emulator, harness, sample, n, profile = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
def post(url, body):
    req = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read() or b"null")
template = json.load(open(sample))
context = template["detail"]["additional-information"]["phases"][2]["phase-context"][0]
url = f"{harness}/2015-03-31/functions/auto-retry/invocations"
first, duplicate = [], []
for i in range(n):
    build = post(f"{emulator}/_local/builds", {"projectName": "bench", "buildStatus": "IN_PROGRESS",
                                               "currentPhase": "PROVISIONING"})
    post(f"{emulator}/_local/builds/{build['id']}/finish", {
        "buildStatus": "FAILED", "phaseType": "PROVISIONING",
        "contexts": [{"statusCode": "BUILD_CONTAINER_UNABLE_TO_PULL_IMAGE", "message": context}]})
    event = json.loads(json.dumps(template))
    event["id"] = f"bench-{i}"
    event["resources"] = [build["arn"]]
    event["detail"]["build-id"] = build["arn"]
    event["detail"]["project-name"] = "bench"
    body = json.dumps(event).encode()
    for times, expected in ((first, "retry"), (duplicate, "duplicate")):
        start = time.perf_counter()
        answer = json.loads(urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")).read())
        times.append((time.perf_counter() - start) * 1000)
        assert answer.get("action") == expected, answer
calls = json.loads(urllib.request.urlopen(f"{emulator}/_local/calls").read())
ops = {}
for call in calls if isinstance(calls, list) else calls.get("calls", []):
    ops[call.get("operation")] = ops.get(call.get("operation"), 0) + 1
def summary(name, times):
    warm = sorted(times[1:])
    return (f"{name}: first {times[0]:.1f} ms, warm median {statistics.median(warm):.2f} ms, "
            f"p90 {warm[int(0.9 * len(warm)) - 1]:.2f} ms")
print(f"auto-retry ({profile}), {n} failed builds, each delivered twice "
      "(includes the harness, codebuild-local and moto on 127.0.0.1):")
print("  " + summary("retry     ", first))
print("  " + summary("duplicate ", duplicate))
print(f"  CodeBuild calls: {dict(sorted(ops.items()))} ({sum(ops.values()) / n:.1f} per failed build)")
PY
rss_kb="$(ps -o rss= -C auto-retry | head -n 1 | tr -d ' ')"
echo "  resident memory after the run ${rss_kb} KiB; binary $(du -h "$fn_bin" | cut -f1)"
