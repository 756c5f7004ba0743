#!/usr/bin/env bash
# Latency and memory of the two other ways a batch starts or stops, as Lambda sandboxes run
# them: codebuild-local and moto (the DynamoDB ledger) on 127.0.0.1, the `batch-trigger` and
# `ops-api` binaries behind lambda-harness.
#
# batch-trigger: N distinct "Autopilot Start Batch" events (config read, override check, ledger
# claim, StartBuildBatch with the token, complete), then each event again (the duplicate path:
# a lost claim answered from the ledger, no CodeBuild call).
# ops-api: N `POST /projects/bench/batches` with distinct Idempotency-Keys (the outer record,
# then the start mechanism), each key again (the stored answer replayed), then
# `POST /batches/{id}/stop` on each started batch.
# Prints first/median/p90 per path, the CodeBuild calls, resident memory and binary sizes. A
# benchmark, not a test: nothing here asserts a time.
#   usage: bench/trigger-ops-latency.sh [release|debug] [N]     (make bench runs it on release)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile=${1:-release}
n=${2:-100}
py="$root/.venv/bin/python3"
dbg="$root/target/debug"
trigger_bin="$root/target/$profile/batch-trigger"
ops_bin="$root/target/$profile/ops-api"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
require_executables "$dbg/codebuild-local" "$dbg/lambda-harness" "$trigger_bin" "$ops_bin" "$root/.venv/bin/moto_server"

start_emulator
start_moto
"$py" - "$moto" <<'PY'
import sys, time, boto3
dynamodb = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench")
for _ in range(300):
    try:
        dynamodb.create_table(TableName="autopilot-ledger", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("moto did not start")
PY
cat >"$work/autopilot.toml" <<'TOML'
[[projects]]
name = "bench"
[projects.start]
allowed_overrides = ["source_version", "environment_variables"]
environment_variable_names = ["BENCH_*"]
TOML
"$dbg/lambda-harness" --port 0 --function "batch-trigger=$trigger_bin" \
  --function "ops-api=$ops_bin" \
  --env "AWS_ENDPOINT_URL=$moto" --env "AWS_ENDPOINT_URL_CODEBUILD=$emulator" \
  --env AWS_REGION=us-east-1 --env AWS_ACCESS_KEY_ID=autopilot-bench \
  --env AWS_SECRET_ACCESS_KEY=bench --env "AUTOPILOT_CONFIG_URI=file:$work/autopilot.toml" \
  --env AUTOPILOT_PROJECT_PATTERNS='*' --env AUTOPILOT_LEDGER_TABLE=autopilot-ledger \
  >"$work/h.out" 2>/dev/null & pids+=("$!")
harness="$(wait_url "$work/h.out")"

"$py" - "$emulator" "$harness" "$root/infra/events/batch-trigger-custom.json" \
  "$root/tests/fixtures/apigw-http-v2-request.json" "$n" "$profile" <<'PY'
import copy, json, statistics, sys, time, urllib.request
emulator, harness, sample, apigw, n, profile = sys.argv[1:5] + [int(sys.argv[5]), sys.argv[6]]
custom, template = json.load(open(sample)), json.load(open(apigw))

def invoke(function, event):
    url = f"{harness}/2015-03-31/functions/{function}/invocations"
    start = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(event).encode(),
                                                        method="POST")) as response:
        answer = json.loads(response.read())
        failed = response.headers.get("X-Amz-Function-Error")
    elapsed = (time.perf_counter() - start) * 1000
    assert not failed, answer
    return answer, elapsed

def codebuild(target, body):
    req = urllib.request.Request(emulator + "/", method="POST", data=json.dumps(body).encode(),
        headers={"X-Amz-Target": f"CodeBuild_20161006.{target}",
                 "Content-Type": "application/x-amz-json-1.1"})
    return json.loads(urllib.request.urlopen(req).read())

def trigger_event(i):
    event = copy.deepcopy(custom)
    event["id"] = f"00000000-0000-4000-8000-{i:012d}"
    event["detail"] = {"project": "bench", "sourceVersion": f"refs/heads/bench-{i}",
                       "environmentVariables": [{"name": "BENCH_RUN", "value": str(i)}],
                       "reason": "bench"}
    return event

def ops_event(method, path, key, body):
    event = copy.deepcopy(template)
    event.update({"routeKey": "$default", "rawPath": path, "rawQueryString": "", "cookies": [],
                  "isBase64Encoded": False, "body": json.dumps(body)})
    event.pop("queryStringParameters", None)
    event.pop("pathParameters", None)
    event["headers"] = {"content-type": "application/json", "idempotency-key": key}
    event["requestContext"]["http"].update(method=method, path=path)
    event["requestContext"]["authorizer"] = {"iam": {
        "accessKey": "AKIAIOSFODNN7EXAMPLE", "accountId": "123456789012",
        "callerId": "AIDACKCEVSQ6C2EXAMPLE", "cognitoIdentity": None, "principalOrgId": None,
        "userArn": "arn:aws:iam::123456789012:user/bench", "userId": "AIDACKCEVSQ6C2EXAMPLE"}}
    return event

codebuild("CreateProject", {"name": "bench", "source": {"type": "NO_SOURCE", "buildspec": "version: 0.2"},
    "artifacts": {"type": "NO_ARTIFACTS"}, "environment": {"type": "LINUX_CONTAINER",
    "image": "aws/codebuild/standard:7.0", "computeType": "BUILD_GENERAL1_SMALL"},
    "serviceRole": "arn:aws:iam::123456789012:role/codebuild"})

def calls_by_operation():
    calls = json.loads(urllib.request.urlopen(f"{emulator}/_local/calls").read())
    counts = {}
    for call in calls if isinstance(calls, list) else calls.get("calls", []):
        counts[call.get("operation")] = counts.get(call.get("operation"), 0) + 1
    return counts

timings = {name: [] for name in ("trigger, start", "trigger, duplicate", "ops start",
                                 "ops start, replayed key", "ops stop")}
for i in range(n):
    event = trigger_event(i)
    for name, action in (("trigger, start", "started"), ("trigger, duplicate", "already_started")):
        answer, ms = invoke("batch-trigger", event)
        timings[name].append(ms)
        assert answer.get("action") == action, answer
after_triggers = calls_by_operation()
started = []
for i in range(n):
    event = ops_event("POST", "/projects/bench/batches", f"bench-start-{i}",
                      {"sourceVersion": f"refs/heads/ops-{i}", "reason": "bench"})
    first = None
    for name in ("ops start", "ops start, replayed key"):
        answer, ms = invoke("ops-api", event)
        timings[name].append(ms)
        assert answer["statusCode"] == 201, answer
        first = first or answer["body"]
        assert answer["body"] == first, (answer["body"], first)
    started.append(json.loads(first)["batch"]["id"])
for i, batch in enumerate(started):
    answer, ms = invoke("ops-api", ops_event("POST", f"/batches/{batch}/stop", f"bench-stop-{i}", {}))
    timings["ops stop"].append(ms)
    assert answer["statusCode"] == 200, answer
total = calls_by_operation()

def summary(name, times):
    warm = sorted(times[1:])
    return (f"{name:<24} first {times[0]:6.1f} ms, warm median {statistics.median(warm):6.2f} ms, "
            f"p90 {warm[max(int(0.9 * len(warm)) - 1, 0)]:6.2f} ms")
print(f"batch-trigger + ops-api ({profile}), {n} events / requests per path "
      "(includes the harness, codebuild-local and moto on 127.0.0.1):")
for name, times in timings.items():
    print("  " + summary(name, times))
trigger_starts = after_triggers.get("StartBuildBatch", 0)
print(f"  StartBuildBatch calls: {trigger_starts} for {n} events sent twice; "
      f"{total.get('StartBuildBatch', 0) - trigger_starts} for {n} ops starts sent twice; "
      f"StopBuildBatch: {total.get('StopBuildBatch', 0)}")
PY
for name in batch-trigger ops-api; do
  rss_kb="$(ps -o rss= -C "$name" | head -n 1 | tr -d ' ')"
  bin="$root/target/$profile/$name"
  echo "  $name: resident memory after the run ${rss_kb} KiB; binary $(du -h "$bin" | cut -f1)"
done
