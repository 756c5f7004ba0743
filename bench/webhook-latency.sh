#!/usr/bin/env bash
# Latency and memory of the webhook path, as Lambda sandboxes run it: codebuild-local and moto
# (DynamoDB ledger, SQS start queue, Secrets Manager) on 127.0.0.1, the `webhook` and
# `batch-starter` binaries behind lambda-harness (the starter fed by the start queue).
#
# For each of N signed GitHub pushes (distinct deliveries, distinct branches) it invokes the
# webhook function with the API Gateway HTTP API v2 event (verify, parse, route, ledger claim,
# SendMessageBatch, complete), then the same delivery again (the duplicate path: a lost claim,
# nothing queued). Then it waits until codebuild-local holds the N batches the starter started
# (StartBuildBatch with the token, then the supersede lookup). Prints first/median/p90 of both
# webhook paths, the start throughput, the CodeBuild calls per delivery, resident memory and
# binary sizes. A benchmark, not a test: nothing here asserts a time.
#   usage: bench/webhook-latency.sh [release|debug] [N]     (make bench runs it on release)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile=${1:-release}
n=${2:-100}
py="$root/.venv/bin/python3"
dbg="$root/target/debug"
webhook_bin="$root/target/$profile/webhook"
starter_bin="$root/target/$profile/batch-starter"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
require_executables "$dbg/codebuild-local" "$dbg/lambda-harness" "$webhook_bin" "$starter_bin" "$root/.venv/bin/moto_server"

start_emulator
start_moto
start_queue="$("$py" - "$moto" <<'PY'
import sys, time, boto3
def client(service):
    return boto3.client(service, endpoint_url=sys.argv[1], region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench")
for _ in range(300):
    try:
        url = client("sqs").create_queue(QueueName="autopilot-start",
                                         Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("moto did not start")
client("dynamodb").create_table(TableName="autopilot-ledger", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
client("secretsmanager").create_secret(Name="bench/webhooks/github", SecretString="bench-secret")
print(url)
PY
)"
cat >"$work/autopilot.toml" <<'TOML'
[webhooks.secrets]
github = ["bench/webhooks/github"]
[[projects]]
name = "bench"
[[repositories]]
provider = "github"
name = "Codertocat/Hello-World"
[[repositories.targets]]
project = "bench"
filter_groups = [[{ type = "EVENT", pattern = "PUSH" }]]
TOML
"$dbg/lambda-harness" --port 0 --function "webhook=$webhook_bin" \
  --function "batch-starter=$starter_bin" --sqs-source "$start_queue=batch-starter" \
  --sqs-endpoint "$moto" \
  --env "AWS_ENDPOINT_URL=$moto" --env "AWS_ENDPOINT_URL_CODEBUILD=$emulator" \
  --env AWS_REGION=us-east-1 --env AWS_ACCESS_KEY_ID=autopilot-bench \
  --env AWS_SECRET_ACCESS_KEY=bench --env "AUTOPILOT_CONFIG_URI=file:$work/autopilot.toml" \
  --env AUTOPILOT_PROJECT_PATTERNS='*' --env AUTOPILOT_LEDGER_TABLE=autopilot-ledger \
  --env "AUTOPILOT_START_QUEUE_URL=$start_queue" >"$work/h.out" 2>/dev/null & pids+=("$!")
harness="$(wait_url "$work/h.out")"

"$py" - "$emulator" "$harness" "$root/shared/tests/fixtures/webhooks/github/push.json" \
  "$root/tests/fixtures/apigw-http-v2-request.json" "$n" "$profile" <<'PY'
import copy, hashlib, hmac, json, statistics, sys, time, urllib.request
emulator, harness, sample, apigw, n, profile = sys.argv[1:5] + [int(sys.argv[5]), sys.argv[6]]
push, template = json.load(open(sample)), json.load(open(apigw))
url = f"{harness}/2015-03-31/functions/webhook/invocations"
def event_for(i):
    body = copy.deepcopy(push)
    sha = hashlib.sha1(str(i).encode()).hexdigest()
    body.update({"ref": f"refs/heads/bench-{i}", "deleted": False, "after": sha})
    body["head_commit"] = {"id": sha, "message": "bench", "added": [], "removed": [], "modified": []}
    body["commits"] = [body["head_commit"]]
    text = json.dumps(body)
    signature = "sha256=" + hmac.new(b"bench-secret", text.encode(), hashlib.sha256).hexdigest()
    event = copy.deepcopy(template)
    event.update({"routeKey": "POST /webhooks/{provider}", "rawPath": "/webhooks/github",
                  "rawQueryString": "", "pathParameters": {"provider": "github"}, "body": text,
                  "isBase64Encoded": False, "cookies": []})
    event.pop("queryStringParameters", None)
    event["requestContext"]["http"]["path"] = "/webhooks/github"
    event["requestContext"]["routeKey"] = "POST /webhooks/{provider}"
    event["headers"] = {"content-type": "application/json", "x-github-event": "push",
                        "x-github-delivery": f"bench-delivery-{i}", "x-hub-signature-256": signature,
                        "content-length": str(len(text))}
    return json.dumps(event).encode()
def codebuild(target, body):
    req = urllib.request.Request(emulator + "/", method="POST", data=json.dumps(body).encode(),
        headers={"X-Amz-Target": f"CodeBuild_20161006.{target}",
                 "Content-Type": "application/x-amz-json-1.1"})
    return json.loads(urllib.request.urlopen(req).read())
codebuild("CreateProject", {"name": "bench", "source": {"type": "NO_SOURCE", "buildspec": "version: 0.2"},
    "artifacts": {"type": "NO_ARTIFACTS"}, "environment": {"type": "LINUX_CONTAINER",
    "image": "aws/codebuild/standard:7.0", "computeType": "BUILD_GENERAL1_SMALL"},
    "serviceRole": "arn:aws:iam::123456789012:role/codebuild"})
queued, duplicate = [], []
for i in range(n):
    body = event_for(i)
    for times, key in ((queued, "queued"), (duplicate, "duplicates")):
        start = time.perf_counter()
        answer = json.loads(urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")).read())
        times.append((time.perf_counter() - start) * 1000)
        payload = json.loads(answer["body"])
        assert answer["statusCode"] == 202 and len(payload[key]) == 1, answer
sent_at = time.perf_counter()
def started():
    ids, token = [], None
    while True:
        # ASCENDING marks this script's own listings, which the call count below leaves out.
        page = codebuild("ListBuildBatchesForProject", {"projectName": "bench", "sortOrder": "ASCENDING"}
                         | ({"nextToken": token} if token else {}))
        ids += page.get("ids", [])
        token = page.get("nextToken")
        if not token:
            return len(ids)
deadline = time.time() + 300
while started() < n and time.time() < deadline:
    time.sleep(0.2)
drained_s = time.perf_counter() - sent_at
count = started()
calls = json.loads(urllib.request.urlopen(f"{emulator}/_local/calls").read())
ops = {}
for call in calls if isinstance(calls, list) else calls.get("calls", []):
    if call.get("operation") == "CreateProject" or call.get("params", {}).get("sortOrder") == "ASCENDING":
        continue
    ops[call.get("operation")] = ops.get(call.get("operation"), 0) + 1
def summary(name, times):
    warm = sorted(times[1:])
    return (f"{name}: first {times[0]:.1f} ms, warm median {statistics.median(warm):.2f} ms, "
            f"p90 {warm[int(0.9 * len(warm)) - 1]:.2f} ms")
print(f"webhook + batch-starter ({profile}), {n} signed GitHub pushes, each delivered twice "
      "(includes the harness, codebuild-local and moto on 127.0.0.1):")
print("  " + summary("webhook, queued   ", queued))
print("  " + summary("webhook, duplicate", duplicate))
print(f"  batch-starter: {count} of {n} batches started {drained_s:.1f} s after the last delivery "
      "(the harness's SQS source polls the queue one batch of 10 at a time)")
print(f"  CodeBuild calls: {dict(sorted(ops.items()))} ({sum(ops.values()) / n:.1f} per delivery)")
PY
for name in webhook batch-starter; do
  rss_kb="$(ps -o rss= -C "$name" | head -n 1 | tr -d ' ')"
  bin="$root/target/$profile/$name"
  echo "  $name: resident memory after the run ${rss_kb} KiB; binary $(du -h "$bin" | cut -f1)"
done
