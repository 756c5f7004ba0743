#!/usr/bin/env bash
# `make demo`: the ops API, auto-retry, the batch reaper, the webhook path (a signed GitHub
# push → webhook → start queue → batch starter) and a scheduled trigger (batch-trigger, read back
# with the autopilot CLI) end to end on this machine, no AWS account needed.
#
#   codebuild-local  (our local CodeBuild, seeded with a few builds and batches)
#        ^  real AWS SDK calls (BatchGetBuilds, RetryBuild,      | Build State Change events
#        |  StartBuildBatch, StopBuildBatch, ...)                v (async, as EventBridge)
#   ops-api, auto-retry, batch-reaper, webhook, batch-starter (the real Lambda binaries, run
#        ^             through the Lambda Runtime API by ...)
#   lambda-harness   (Lambda's Invoke API on 127.0.0.1; failed async work → SQS in moto; the
#        ^            delay and start queues polled as SQS event sources)
#   this script      (moto: DynamoDB ledger, SQS delay and start queues + DLQs, SNS "gave up"
#                     topic, the GitHub webhook secret in Secrets Manager)
#
# Assumes `cargo build --workspace --bins` ran and .venv exists (`make demo` does both first).
# Everything started here is stopped on exit, whatever happens.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${AUTOPILOT_BIN_DIR:-$root/target/debug}"
# HTTP and JSON through Python: curl is not on a fresh Debian, .venv's python3 is there after
# `make venv`.
py="$root/.venv/bin/python3"
[[ -x "$py" ]] || py="$(command -v python3 || true)"

for tool in codebuild-local lambda-harness ops-api auto-retry batch-reaper webhook batch-starter \
  batch-trigger autopilot; do
  if [[ ! -x "$bin/$tool" ]]; then
    echo "demo: $bin/$tool is missing: run 'cargo build --workspace --bins' (make demo does)" >&2
    exit 1
  fi
done
if [[ -z "$py" ]]; then
  echo "demo: python3 not found: run 'make venv'" >&2
  exit 1
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ $status -ne 0 ]]; then
    echo "demo failed; the servers' logs:" >&2
    tail -n 20 "$work"/*.log >&2 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a server (asked for a free port) and sets server_url from its "listening on URL" line.
# Not run in $(...): the pid must be recorded in this shell for the cleanup to stop it.
server_url=""
start_server() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.log" &
  local pid=$!
  pids+=("$pid")
  server_url=""
  for _ in $(seq 1 300); do
    server_url="$(sed -n 's/.* listening on \(http[^ ]*\).*/\1/p' "$work/$name.out" | head -n 1)"
    [[ -n "$server_url" ]] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: $name exited before it was ready" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "demo: $name did not become ready within 30 s" >&2
  return 1
}

# `http METHOD URL [JSON]`: prints the response body; fails on a non-2xx status.
http() {
  "$py" - "$@" <<'PY'
import sys, urllib.request, urllib.error
method, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
request = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=60) as response:
        sys.stdout.write(response.read().decode())
except urllib.error.HTTPError as error:
    sys.exit(f"{method} {url}: {error.code} {error.read().decode()}")
PY
}

# `json_field JSON KEY`: one top-level string field of a JSON object.
json_field() {
  "$py" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

# `ask METHOD PATH [QUERY [IDEMPOTENCY_KEY]]`: builds the API Gateway HTTP API v2 event for the
# request (from the AWS-shaped sample in tests/fixtures; with a key, also the Idempotency-Key
# header and the IAM caller API Gateway puts in the request context), invokes ops-api through the
# Invoke API and shows the answer.
ask() {
  local method=$1 path=$2 query=${3:-} key=${4:-}
  local shown="$method $path${query:+?$query}${key:+  Idempotency-Key: $key}"
  if ((${#shown} > 110)); then shown="${shown:0:107}..."; fi
  echo
  echo "==> $shown"
  "$py" - "$harness/2015-03-31/functions/ops-api/invocations" "$root/tests/fixtures/apigw-http-v2-request.json" \
    "$method" "$path" "$query" "$key" <<'PY'
import json, sys, urllib.request, uuid
url, sample, method, path, query, key = sys.argv[1:7]
event = json.load(open(sample))
params = {}
for pair in filter(None, query.split("&")):
    key, _, value = pair.partition("=")
    params[key] = f"{params[key]},{value}" if key in params else value
route = "GET /builds/{id}" if path.startswith("/builds/") else "GET /builds" if path == "/builds" else "$default"
event.update(routeKey=route, rawPath=path, rawQueryString=query, cookies=[], isBase64Encoded=False)
event["requestContext"].update(routeKey=route, requestId=str(uuid.uuid4()))
event["requestContext"]["http"].update(method=method, path=path)
event.pop("body", None)
if key:
    event["headers"]["idempotency-key"] = key
    event["requestContext"]["authorizer"] = {"iam": {
        "accessKey": "AKIAIOSFODNN7EXAMPLE", "accountId": "123456789012",
        "callerId": "AIDACKCEVSQ6C2EXAMPLE", "cognitoIdentity": None, "principalOrgId": None,
        "userArn": "arn:aws:iam::123456789012:user/operator", "userId": "AIDACKCEVSQ6C2EXAMPLE"}}
if params:
    event["queryStringParameters"] = params
else:
    event.pop("queryStringParameters", None)
if path.startswith("/builds/"):
    event["pathParameters"] = {"id": path[len("/builds/"):]}
else:
    event.pop("pathParameters", None)
request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST")
with urllib.request.urlopen(request, timeout=60) as response:
    answer = json.loads(response.read())
    function_error = response.headers.get("X-Amz-Function-Error")
if function_error:
    print(f"    the function failed ({function_error}): {json.dumps(answer)}")
    sys.exit(1)
print(f"<== HTTP {answer['statusCode']}")
try:
    body = json.loads(answer.get("body") or "null")
    print("\n".join("    " + line for line in json.dumps(body, indent=2).splitlines()))
except ValueError:
    print("    " + (answer.get("body") or ""))
PY
}

echo "Starting codebuild-local (a local CodeBuild) ..."
start_server codebuild-local "$bin/codebuild-local" --port 0
emulator=$server_url
echo "    $emulator"

echo "Seeding builds through its control API (/_local/builds) ..."
failed="$(http POST "$emulator/_local/builds" '{
  "projectName": "web", "buildStatus": "FAILED", "ageSeconds": 900,
  "initiator": "GitHub-Hookshot/4a2b1c", "sourceVersion": "refs/heads/main",
  "phases": [{"phaseType": "BUILD", "phaseStatus": "FAILED", "contexts": [
    {"statusCode": "COMMAND_EXECUTION_ERROR",
     "message": "Error while executing command: make test. Reason: exit status 2"}]}]}')"
running="$(http POST "$emulator/_local/builds" '{
  "projectName": "api", "buildStatus": "IN_PROGRESS", "currentPhase": "BUILD", "ageSeconds": 120}')"
batched="$(http POST "$emulator/_local/builds" '{
  "projectName": "web", "buildStatus": "SUCCEEDED", "ageSeconds": 3600,
  "buildBatchArn": "arn:aws:codebuild:us-east-1:123456789012:build-batch/web:0b5c7a1e-3f7d-4f7e-9a51-2d6c1b8e4f00"}')"
failed_id="$(json_field "$failed" id)"
running_id="$(json_field "$running" id)"
batched_id="$(json_field "$batched" id)"
echo "    FAILED      $failed_id"
echo "    IN_PROGRESS $running_id"
echo "    SUCCEEDED   $batched_id (in a batch)"

# The GitHub webhook secret (in Secrets Manager, as the stack keeps it); the sample push in
# infra/events/webhook-github-push-branch.json is signed with it, and the demo signs it again.
webhook_secret=autopilot-demo-webhook-secret

echo "Starting moto's server (DynamoDB ledger, SQS queues, SNS topic, Secrets Manager) ..."
moto_port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=("$!")
moto="http://127.0.0.1:$moto_port"
# boto3 comes with moto in .venv; it also waits until the server answers.
# One line each: the dead-letter queue, the delay queue, the "gave up" topic and the queue
# subscribed to it (where this script reads the notices), the start queue and its DLQ.
mapfile -t resources < <("$py" - "$moto" "$webhook_secret" <<'PY'
import json, sys, time, boto3
def client(service):
    return boto3.client(service, endpoint_url=sys.argv[1], region_name="us-east-1",
                        aws_access_key_id="demo", aws_secret_access_key="demo")
sqs = client("sqs")
for _ in range(300):
    try:
        dlq = sqs.create_queue(QueueName="autopilot-dlq")["QueueUrl"]
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("moto did not start")
arn = lambda url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
delay_dlq = sqs.create_queue(QueueName="autopilot-delay-dlq")["QueueUrl"]
delay = sqs.create_queue(QueueName="autopilot-delay", Attributes={
    "VisibilityTimeout": "5",
    "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn(delay_dlq), "maxReceiveCount": 5})})["QueueUrl"]
# The ledger table as DynamoLedger::create_table makes it (template.yaml adds TTL and PITR).
client("dynamodb").create_table(TableName="autopilot-ledger", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
sns = client("sns")
topic = sns.create_topic(Name="autopilot-gave-up")["TopicArn"]
inbox = sqs.create_queue(QueueName="gave-up-inbox")["QueueUrl"]
sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn(inbox))
# The start queue the webhook function fills and the batch starter drains; a short visibility
# timeout so a handed-back message comes again quickly in the demo.
start_dlq = sqs.create_queue(QueueName="autopilot-start-dlq")["QueueUrl"]
start = sqs.create_queue(QueueName="autopilot-start", Attributes={
    "VisibilityTimeout": "10",
    "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn(start_dlq), "maxReceiveCount": 5})})["QueueUrl"]
client("secretsmanager").create_secret(Name="autopilot/webhooks/github", SecretString=sys.argv[2])
print(dlq, delay, topic, inbox, start, start_dlq, sep="\n")
PY
)
if ((${#resources[@]} != 6)); then
  echo "demo: could not create the AWS resources in moto" >&2
  exit 1
fi
dlq=${resources[0]} delay_queue=${resources[1]} topic=${resources[2]} inbox=${resources[3]}
start_queue=${resources[4]} start_dlq=${resources[5]}
echo "    $moto (dead-letter queue: $dlq)"

# The one configuration every function reads: every project, at most one retry, no backoff so
# the demo is quick; batches running longer than 30 minutes are stale (under the 60-minute
# timeout codebuild-local gives projects; superseding is on by default, with main, master and
# release/* protected). GitHub pushes to Codertocat/Hello-World start project storefront.
cat >"$work/autopilot.toml" <<'TOML'
# The nightly suite's schedule may choose the suite (one variable) and nothing else.
[[projects]]
name = "nightly-e2e"
[projects.start]
allowed_overrides = ["source_version", "environment_variables"]
environment_variable_names = ["E2E_SUITE"]

[[projects]]
name = "*"
[projects.retry]
max_retries = 1
backoff_seconds = 0
[projects.reaper]
max_age_minutes = 30

[webhooks.secrets]
github = ["autopilot/webhooks/github"]

[[repositories]]
provider = "github"
name = "Codertocat/Hello-World"
[[repositories.targets]]
project = "storefront"
filter_groups = [[{ type = "EVENT", pattern = "PUSH" }]]
TOML

echo "Starting lambda-harness with the ops-api, auto-retry, batch-reaper, webhook and"
echo "batch-starter, batch-trigger binaries ..."
# codebuild-local names a caller by its access key, so auto-retry recognises the builds its own
# RetryBuild made by this key (AUTOPILOT_OWN_INITIATOR).
start_server lambda-harness "$bin/lambda-harness" --port 0 --show-logs \
  --on-failure-queue "$dlq" --sqs-endpoint "$moto" \
  --function "ops-api=$bin/ops-api" \
  --function "auto-retry=$bin/auto-retry" \
  --function "batch-reaper=$bin/batch-reaper" \
  --function "webhook=$bin/webhook" \
  --function "batch-starter=$bin/batch-starter" \
  --function "batch-trigger=$bin/batch-trigger" \
  --sqs-source "$delay_queue=auto-retry" \
  --sqs-source "$start_queue=batch-starter" \
  --env "AWS_ENDPOINT_URL_CODEBUILD=$emulator" \
  --env "AWS_ENDPOINT_URL=$moto" \
  --env AWS_REGION=us-east-1 \
  --env AWS_ACCESS_KEY_ID=autopilot-auto-retry \
  --env AWS_SECRET_ACCESS_KEY=demo \
  --env "AUTOPILOT_CONFIG_URI=file:$work/autopilot.toml" \
  --env AUTOPILOT_PROJECT_PATTERNS='*' \
  --env AUTOPILOT_LEDGER_TABLE=autopilot-ledger \
  --env "AUTOPILOT_DELAY_QUEUE_URL=$delay_queue" \
  --env "AUTOPILOT_GAVE_UP_TOPIC_ARN=$topic" \
  --env AUTOPILOT_OWN_INITIATOR=autopilot-auto-retry \
  --env AUTOPILOT_DRY_RUN=false \
  --env AUTOPILOT_REAPER_CONCURRENCY=8 \
  --env "AUTOPILOT_START_QUEUE_URL=$start_queue"
harness=$server_url
echo "    $harness/2015-03-31/functions/ops-api/invocations"
echo "    $harness/2015-03-31/functions/auto-retry/invocations (also fed by the delay queue)"
echo "    $harness/2015-03-31/functions/batch-reaper/invocations"
echo "    $harness/2015-03-31/functions/webhook/invocations"
echo "    $harness/2015-03-31/functions/batch-starter/invocations (fed by the start queue)"
echo "    $harness/2015-03-31/functions/batch-trigger/invocations"

echo
echo "Asking the ops API (each request is an API Gateway HTTP API v2 event):"
ask GET "/builds/$failed_id"
ask GET /builds "ids=$running_id,web:00000000-0000-4000-8000-000000000000,$batched_id"
ask GET /builds/not-a-build-id

echo
echo "Nothing is lost: an event the function cannot handle, invoked asynchronously, is retried"
echo "twice (as Lambda does) and then lands in the dead-letter queue:"
"$py" - "$harness/2015-03-31/functions/ops-api/invocations" "$moto" "$dlq" <<'PY'
import json, sys, time, urllib.request, boto3
url, moto, dlq = sys.argv[1:4]
request = urllib.request.Request(url, data=b'{"not": "an API Gateway event"}', method="POST",
                                 headers={"X-Amz-Invocation-Type": "Event"})
with urllib.request.urlopen(request, timeout=60) as response:
    print(f"==> async invoke: HTTP {response.status}")
sqs = boto3.client("sqs", endpoint_url=moto, region_name="us-east-1",
                   aws_access_key_id="demo", aws_secret_access_key="demo")
deadline = time.time() + 30
while time.time() < deadline:
    messages = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages", [])
    if messages:
        record = json.loads(messages[0]["Body"])
        context = record["requestContext"]
        print(f"<== dead-letter record: condition={context['condition']}, "
              f"attempts={context['approximateInvokeCount']}, "
              f"error={record['responsePayload'].get('errorType')}")
        break
else:
    sys.exit("no dead-letter record arrived within 30 s")
PY

echo
echo "Auto-retry: codebuild-local now sends every Build State Change event to the function,"
echo "asynchronously, as the EventBridge rule does."
http PUT "$emulator/_local/event-sink" \
  "{\"url\": \"$harness/2015-03-31/functions/auto-retry/invocations\"}" >/dev/null

# `decision BUILD_ID`: waits for auto-retry's decision on the failure of BUILD_ID (from the
# function's JSON log lines, which the harness copies to its log) and prints it; sets `retry_id`.
retry_id=""
decision() {
  local answer
  answer="$("$py" - "$work/lambda-harness.log" "$1" <<'PY'
import json, sys, time
log, build = sys.argv[1:3]
deadline = time.time() + 60
while time.time() < deadline:
    for line in open(log, errors="replace"):
        if not line.startswith("[auto-retry] "):
            continue
        try:
            fields = json.loads(line[len("[auto-retry] "):]).get("fields", {})
        except ValueError:
            continue
        if (fields.get("message") == "auto-retry decision" and fields.get("build_id") == build
                and fields.get("class") != "not_a_failure"):
            shown = {k: fields[k] for k in ("action", "reason", "class", "project", "build_id",
                                            "attempt", "dry_run", "retry_id") if k in fields}
            print(fields.get("retry_id", ""))
            print("    decision log: " + json.dumps(shown))
            sys.exit(0)
    time.sleep(0.2)
sys.exit(f"no auto-retry decision on {build} within 60 s")
PY
)"
  retry_id="$(head -n 1 <<<"$answer")"
  tail -n +2 <<<"$answer"
}

rate_limited='{"buildStatus": "FAILED", "phaseType": "PROVISIONING", "contexts": [
  {"statusCode": "BUILD_CONTAINER_UNABLE_TO_PULL_IMAGE",
   "message": "CannotPullContainerError: toomanyrequests: Too Many Requests (Docker Hub rate limit)"}]}'

shop="$(http POST "$emulator/_local/builds" '{
  "projectName": "shop", "buildStatus": "IN_PROGRESS", "currentPhase": "PROVISIONING",
  "initiator": "GitHub-Hookshot/4a2b1c", "sourceVersion": "refs/heads/main"}')"
shop_id="$(json_field "$shop" id)"
echo
echo "==> $shop_id fails: Docker Hub's rate limit while pulling the image (transient)"
http POST "$emulator/_local/builds/$shop_id/finish" "$rate_limited" >/dev/null
decision "$shop_id"
first_retry=$retry_id
if [[ -z "$first_retry" ]]; then
  echo "demo: auto-retry did not retry $shop_id" >&2
  exit 1
fi
echo "<== the retry appears in codebuild-local: $first_retry"

echo
echo "==> $first_retry fails the same way (max_retries is 1 in the demo configuration)"
http POST "$emulator/_local/builds/$first_retry/finish" "$rate_limited" >/dev/null
decision "$first_retry"
"$py" - "$moto" "$inbox" <<'PY'
import json, sys, time, boto3
moto, inbox = sys.argv[1:3]
sqs = boto3.client("sqs", endpoint_url=moto, region_name="us-east-1",
                   aws_access_key_id="demo", aws_secret_access_key="demo")
deadline = time.time() + 30
while time.time() < deadline:
    messages = sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=1).get("Messages", [])
    if messages:
        notice = json.loads(json.loads(messages[0]["Body"])["Message"])
        print(f"<== \"gave up\" on SNS: project={notice['project']}, root={notice['root_build']}, "
              f"attempts={notice['attempts']}, because={notice['because']}, "
              f"reasons={','.join(notice['reasons'])}")
        break
else:
    sys.exit("no gave-up notice arrived within 30 s")
PY
echo "    builds of project shop: $("$py" - "$emulator" <<'PY'
import json, sys, urllib.request
request = urllib.request.Request(sys.argv[1] + "/", method="POST",
    data=json.dumps({"projectName": "shop", "sortOrder": "ASCENDING"}).encode(),
    headers={"X-Amz-Target": "CodeBuild_20161006.ListBuildsForProject",
             "Content-Type": "application/x-amz-json-1.1"})
print(" -> ".join(json.loads(urllib.request.urlopen(request, timeout=30).read())["ids"]))
PY
)"

echo
echo "Batch reaper: CodeBuild has no batch events, so a schedule (every 5 minutes, once"
echo "ReaperEnabled is true in template.yaml) sweeps the in-progress batches of every project."
# `seed_batch LABEL JSON`: seeds a running batch through the control API and prints it; sets
# batch_id.
batch_id=""
seed_batch() {
  local label=$1 seeded
  seeded="$(http POST "$emulator/_local/batches" "$2")"
  batch_id="$(json_field "$seeded" id)"
  "$py" - "$label" "$seeded" <<'PY'
import json, sys, time
label, batch = sys.argv[1], json.loads(sys.argv[2])
minutes = round((time.time() - batch["startTime"]) / 60)
print(f"    {label:<12} #{batch['buildBatchNumber']:<2} {batch['id']}  "
      f"{batch['sourceVersion']}, running for {minutes} min")
PY
}
# Seeded oldest first: codebuild-local numbers a project's batches as CodeBuild does, so the
# newer batch of a branch is the one with the higher buildBatchNumber.
echo "Seeding running batches of project checkout (max_age: 30 minutes):"
seed_batch stale '{
  "projectName": "checkout", "ageSeconds": 2700, "sourceVersion": "refs/heads/soak-test",
  "initiator": "GitHub-Hookshot/4a2b1c",
  "builds": [{"identifier": "unit"}, {"identifier": "e2e"}]}'
stale_batch=$batch_id
seed_batch older '{
  "projectName": "checkout", "ageSeconds": 1200, "sourceVersion": "refs/heads/feature/login",
  "initiator": "GitHub-Hookshot/4a2b1c",
  "builds": [{"identifier": "unit", "buildStatus": "SUCCEEDED"}, {"identifier": "e2e"}]}'
older_batch=$batch_id
seed_batch newer '{
  "projectName": "checkout", "ageSeconds": 120, "sourceVersion": "refs/heads/feature/login",
  "initiator": "GitHub-Hookshot/4a2b1c",
  "builds": [{"identifier": "unit"}, {"identifier": "e2e"}]}'
newer_batch=$batch_id
seed_batch "main, older" '{
  "projectName": "checkout", "ageSeconds": 900, "sourceVersion": "refs/heads/main",
  "initiator": "GitHub-Hookshot/4a2b1c"}'
main_older_batch=$batch_id
seed_batch "main, newer" '{
  "projectName": "checkout", "ageSeconds": 60, "sourceVersion": "refs/heads/main",
  "initiator": "GitHub-Hookshot/4a2b1c"}'
main_newer_batch=$batch_id

echo
echo "==> batch-reaper invoked with the scheduled event EventBridge sends (infra/events/)"
"$py" - "$harness/2015-03-31/functions/batch-reaper/invocations" \
  "$root/infra/events/batch-reaper-scheduled.json" "$work/lambda-harness.log" <<'PY'
import json, sys, time, urllib.request
url, event_file, log = sys.argv[1:4]
request = urllib.request.Request(url, data=open(event_file, "rb").read(), method="POST")
with urllib.request.urlopen(request, timeout=120) as response:
    summary = json.loads(response.read())
    function_error = response.headers.get("X-Amz-Function-Error")
if function_error:
    sys.exit(f"batch-reaper failed ({function_error}): {json.dumps(summary)}")
# The decision lines: the function's JSON log lines about one batch, as the harness copied them
# (the copy may trail the response: wait for one line per batch seen, for a while).
decisions = []
deadline = time.time() + 10
while time.time() < deadline and len(decisions) < max(summary.get("seen", 0), 1):
    decisions = []
    for line in open(log, errors="replace"):
        if not line.startswith("[batch-reaper] "):
            continue
        try:
            record = json.loads(line[len("[batch-reaper] "):])
        except ValueError:
            continue
        fields = dict(record.get("fields", {}))
        for span in record.get("spans", []) + [record.get("span") or {}]:
            for key, value in span.items():
                fields.setdefault(key, value)
        if "batch_id" in fields and "action" in fields:
            decisions.append(fields)
    if len(decisions) < summary.get("seen", 0):
        time.sleep(0.2)
for fields in decisions:
    shown = {k: fields[k] for k in ("action", "reason", "outcome", "project", "batch_id",
                                   "branch", "superseded_by", "age_seconds", "dry_run")
             if k in fields}
    print("    decision log: " + json.dumps(shown))
print("<== summary (the invocation's response):")
print("\n".join("    " + line for line in json.dumps(summary, indent=2).splitlines()))
PY

# What codebuild-local says now is the proof, whatever the logs claim.
"$py" - "$emulator" "$stale_batch" "$older_batch" "$newer_batch" "$main_older_batch" \
  "$main_newer_batch" <<'PY'
import json, sys, urllib.request
emulator, stale, older, newer, main_older, main_newer = sys.argv[1:7]
request = urllib.request.Request(emulator + "/", method="POST",
    data=json.dumps({"ids": sys.argv[2:7]}).encode(),
    headers={"X-Amz-Target": "CodeBuild_20161006.BatchGetBuildBatches",
             "Content-Type": "application/x-amz-json-1.1"})
batches = {b["id"]: b for b in json.loads(urllib.request.urlopen(request, timeout=30).read())["buildBatches"]}
# main is protected: never stopped as superseded (and neither batch of it is stale).
wanted = {stale: ("stale", "STOPPED"), older: ("older", "STOPPED"), newer: ("newer", "IN_PROGRESS"),
          main_older: ("main, older", "IN_PROGRESS"), main_newer: ("main, newer", "IN_PROGRESS")}
print("    batches in codebuild-local now:")
wrong = []
for batch_id, (label, status) in wanted.items():
    actual = batches.get(batch_id, {}).get("buildBatchStatus")
    print(f"    {label:<12} {actual:<12} {batch_id}")
    if actual != status:
        wrong.append(f"{label} batch is {actual}, expected {status}")
if wrong:
    sys.exit("demo: " + "; ".join(wrong))
PY

echo
echo "Webhooks: a GitHub push to Codertocat/Hello-World, signed with the secret in Secrets"
echo "Manager. The webhook function verifies it, routes it (project storefront), claims it in the"
echo "ledger and queues the start; the batch starter, fed by the start queue, starts the batch and"
echo "supersedes the older one of the branch."
echo "Seeding running batches of project storefront:"
seed_batch feature/cart '{
  "projectName": "storefront", "ageSeconds": 600, "sourceVersion": "refs/heads/feature/cart",
  "initiator": "GitHub-Hookshot/4a2b1c"}'
cart_batch=$batch_id
seed_batch main '{
  "projectName": "storefront", "ageSeconds": 300, "sourceVersion": "refs/heads/main",
  "initiator": "GitHub-Hookshot/4a2b1c"}'
storefront_main_batch=$batch_id

# `deliver queued|duplicate`: signs the sample push (infra/events/) with the demo secret as
# GitHub does (X-Hub-Signature-256 over the raw body), invokes the webhook function with the API
# Gateway HTTP API v2 event, shows the answer and checks it lists storefront as expected.
deliver() {
  "$py" - "$harness/2015-03-31/functions/webhook/invocations" \
    "$root/infra/events/webhook-github-push-branch.json" "$webhook_secret" "$1" <<'PY'
import hashlib, hmac, json, sys, time, urllib.request, uuid
url, event_file, secret, expect = sys.argv[1:5]
event = json.load(open(event_file))
body = event["body"].encode()
headers = event["headers"]
headers["x-hub-signature-256"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
headers["content-length"] = str(len(body))
event["requestContext"].update(requestId=str(uuid.uuid4()), timeEpoch=int(time.time() * 1000),
                               time=time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()))
delivery = headers["x-github-delivery"]
push = json.loads(body)
print(f"==> POST /webhooks/github  X-GitHub-Event: {headers['x-github-event']}, "
      f"X-GitHub-Delivery: {delivery}")
print(f"    {push['ref']} at {push['after'][:12]}, X-Hub-Signature-256: "
      f"{headers['x-hub-signature-256'][:19]}...")
request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST")
with urllib.request.urlopen(request, timeout=60) as response:
    answer = json.loads(response.read())
    function_error = response.headers.get("X-Amz-Function-Error")
if function_error:
    sys.exit(f"demo: the webhook function failed ({function_error}): {json.dumps(answer)}")
print(f"<== HTTP {answer['statusCode']}")
try:
    reply = json.loads(answer.get("body") or "null")
except ValueError:
    reply = answer.get("body")
print("\n".join("    " + line for line in json.dumps(reply, indent=2).splitlines()))
listed = lambda key: [entry.get("project") for entry in (reply or {}).get(key, [])]
if answer["statusCode"] != 202:
    sys.exit(f"demo: the webhook function answered {answer['statusCode']}, expected 202")
if expect == "queued" and (listed("queued") != ["storefront"] or listed("duplicates")):
    sys.exit("demo: expected storefront under \"queued\" (and no duplicates)")
if expect == "duplicate" and (listed("duplicates") != ["storefront"] or listed("queued")):
    sys.exit("demo: expected storefront under \"duplicates\" (and nothing queued)")
PY
}

echo
delivery="$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["headers"]["x-github-delivery"])' \
  "$root/infra/events/webhook-github-push-branch.json")"
deliver queued

# `storefront_batches WAIT_FOR DELIVERY CART MAIN`: the storefront batches as codebuild-local
# answers ListBuildBatchesForProject and BatchGetBuildBatches (the proof, whatever the logs say).
# With WAIT_FOR=superseded it polls (at most 30 s) until a batch carries AUTOPILOT_DELIVERY =
# DELIVERY, CART is STOPPED and MAIN still IN_PROGRESS; with WAIT_FOR=unchanged it checks, once,
# that there is still exactly one batch of that delivery and three batches in all.
storefront_batches() {
  "$py" - "$emulator" "$@" <<'PY'
import json, sys, time, urllib.request
emulator, wait_for, delivery, cart, main = sys.argv[1:6]
def call(target, payload):
    request = urllib.request.Request(emulator + "/", method="POST", data=json.dumps(payload).encode(),
        headers={"X-Amz-Target": f"CodeBuild_20161006.{target}",
                 "Content-Type": "application/x-amz-json-1.1"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())
def env(batch):
    return {v["name"]: v["value"] for v in batch.get("environmentVariablesOverride")
            or batch.get("environment", {}).get("environmentVariables", [])}
def look():
    ids = call("ListBuildBatchesForProject", {"projectName": "storefront", "sortOrder": "ASCENDING"})["ids"]
    batches = call("BatchGetBuildBatches", {"ids": ids})["buildBatches"] if ids else []
    started = [b for b in batches if env(b).get("AUTOPILOT_DELIVERY") == delivery]
    status = {b["id"]: b["buildBatchStatus"] for b in batches}
    return batches, started, status
deadline = time.time() + (30 if wait_for == "superseded" else 0)
while True:
    batches, started, status = look()
    if wait_for == "superseded":
        done = len(started) == 1 and status.get(cart) == "STOPPED" and status.get(main) == "IN_PROGRESS"
    else:
        done = len(started) == 1 and len(batches) == 3
    if done or time.time() >= deadline:
        break
    time.sleep(0.3)
print("    batches of storefront in codebuild-local now:")
for batch in batches:
    label = ("started" if batch in started else "feature/cart" if batch["id"] == cart
             else "main" if batch["id"] == main else "other")
    version = batch.get("sourceVersion", "")
    if not version.startswith("refs/"):
        version = version[:12]
    print(f"    {label:<12} #{batch['buildBatchNumber']:<2} {batch['buildBatchStatus']:<12} "
          f"{batch['id']}  {version}")
    if batch in started:
        variables = env(batch)
        print("                     " + ", ".join(f"{name}={variables[name]}" for name in (
            "AUTOPILOT_EVENT", "AUTOPILOT_BRANCH", "AUTOPILOT_DELIVERY") if name in variables))
if not done:
    if wait_for == "superseded":
        sys.exit(f"demo: within 30 s expected one batch with AUTOPILOT_DELIVERY={delivery}, the "
                 f"feature/cart batch STOPPED and the main batch IN_PROGRESS; got {len(started)} "
                 f"such batch(es), feature/cart {status.get(cart)}, main {status.get(main)}")
    sys.exit(f"demo: the same delivery again changed the batches: {len(batches)} batches, "
             f"{len(started)} for delivery {delivery}")
PY
}
storefront_batches superseded "$delivery" "$cart_batch" "$storefront_main_batch"

# The batch starter's decision line (the harness copies the function's JSON log lines).
"$py" - "$work/lambda-harness.log" <<'PY'
import json, sys, time
deadline = time.time() + 10
while time.time() < deadline:
    for line in open(sys.argv[1], errors="replace"):
        if not line.startswith("[batch-starter] "):
            continue
        try:
            fields = json.loads(line[len("[batch-starter] "):]).get("fields", {})
        except ValueError:
            continue
        if fields.get("message") == "batch-starter decision":
            shown = {k: fields[k] for k in ("action", "reason", "project", "batch_id", "stopped",
                                            "dry_run") if k in fields}
            print("    decision log: " + json.dumps(shown))
            sys.exit(0)
    time.sleep(0.2)
print("    (no batch-starter decision line in the log)")
PY

echo
echo "GitHub redelivers with the same X-GitHub-Delivery (a person's \"Redeliver\" too); the"
echo "ledger answers it as a duplicate and nothing new starts:"
echo
deliver duplicate
# Nothing new was queued: once the start queue is empty (the first message deleted after the
# starter handled it) the batches are what they were.
"$py" - "$moto" "$start_queue" "$start_dlq" <<'PY'
import sys, time, boto3
moto, start, start_dlq = sys.argv[1:4]
sqs = boto3.client("sqs", endpoint_url=moto, region_name="us-east-1",
                   aws_access_key_id="demo", aws_secret_access_key="demo")
def waiting(url):
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(n) for n in attributes.values())
deadline = time.time() + 30
while waiting(start) and time.time() < deadline:
    time.sleep(0.3)
left, dead = waiting(start), waiting(start_dlq)
print(f"    start queue: {left} message(s) left; its dead-letter queue: {dead}")
if left or dead:
    sys.exit("demo: the start queue did not drain cleanly")
PY
storefront_batches unchanged "$delivery" "$cart_batch" "$storefront_main_batch"

echo
echo "Triggers: the nightly schedule fires. EventBridge's schedule rule turns its tick into an"
echo "\"Autopilot Start Batch\" event (input transformer; infra/events/batch-trigger-scheduled.json),"
echo "asking for project nightly-e2e with one variable, and invokes batch-trigger asynchronously."
"$py" - "$emulator" <<'PY'
import sys, boto3
codebuild = boto3.client("codebuild", endpoint_url=sys.argv[1], region_name="us-east-1",
                         aws_access_key_id="demo", aws_secret_access_key="demo")
codebuild.create_project(
    name="nightly-e2e", source={"type": "NO_SOURCE", "buildspec": "version: 0.2"},
    artifacts={"type": "NO_ARTIFACTS"}, serviceRole="arn:aws:iam::123456789012:role/codebuild",
    environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                 "computeType": "BUILD_GENERAL1_SMALL"})
print("    created project nightly-e2e in codebuild-local")
PY
# `tick EVENT_FILE`: invokes batch-trigger with the event as EventBridge does (asynchronously)
# and prints its decision line for that event id from the harness log.
tick() {
  "$py" - "$harness/2015-03-31/functions/batch-trigger/invocations" "$1" "$work/lambda-harness.log" <<'PY'
import json, sys, time, urllib.request
url, event_file, log = sys.argv[1:4]
event = json.load(open(event_file))
# Only this invocation's line: a redelivered event has the same id as the first.
with open(log, "rb") as earlier:
    offset = earlier.seek(0, 2)
request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST",
                                 headers={"X-Amz-Invocation-Type": "Event"})
with urllib.request.urlopen(request, timeout=60) as response:
    print(f"==> event {event['id']} ({event['source']}): async invoke HTTP {response.status}")
deadline = time.time() + 30
while time.time() < deadline:
    with open(log, "rb") as current:
        current.seek(offset)
        lines = current.read().decode(errors="replace").splitlines()
    for line in lines:
        if not line.startswith("[batch-trigger] "):
            continue
        try:
            fields = json.loads(line[len("[batch-trigger] "):]).get("fields", {})
        except ValueError:
            continue
        if fields.get("message") == "batch-trigger decision" and fields.get("event_id") == event["id"]:
            shown = {k: fields[k] for k in ("action", "reason", "project", "batch_id", "overrides")
                     if k in fields}
            print("    decision log: " + json.dumps(shown))
            sys.exit(0)
    time.sleep(0.2)
sys.exit(f"demo: no batch-trigger decision for event {event['id']} within 30 s")
PY
}
"$py" - "$root/infra/events/batch-trigger-scheduled.json" "$work/tick.json" <<'PY'
import json, sys
event = json.load(open(sys.argv[1]))
event["detail"] = {"project": "nightly-e2e", "reason": "nightly",
                   "environmentVariables": [{"name": "E2E_SUITE", "value": "smoke"}]}
json.dump(event, open(sys.argv[2], "w"))
PY
tick "$work/tick.json"
echo
echo "EventBridge delivers at least once: the same tick again starts nothing new (the ledger"
echo "answers it, CodeBuild is not called):"
tick "$work/tick.json"
echo
echo "A custom event asking for an override the project does not allow (a buildspec) is refused"
echo "with its reason, and nothing starts:"
"$py" - "$work/tick.json" "$work/refused.json" <<'PY'
import json, sys
event = json.load(open(sys.argv[1]))
event.update(id="5f0c7e52-4c7d-4d0b-9a43-7e2f7f3f4a10", source="com.example.release")
event["detail"] = {"project": "nightly-e2e", "buildspecOverride": "version: 0.2\nphases: {}"}
json.dump(event, open(sys.argv[2], "w"))
PY
tick "$work/refused.json"

echo
echo "The autopilot CLI reads it back from CodeBuild (any endpoint; here codebuild-local):"
echo "==> autopilot batches list nightly-e2e --output table"
AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 \
  "$bin/autopilot" batches list nightly-e2e --endpoint-url "$emulator" --output table |
  sed 's/^/    /'
nightly="$(AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 \
  "$bin/autopilot" batches list nightly-e2e --endpoint-url "$emulator")"
"$py" - "$nightly" <<'PY'
import json, sys
batches = json.loads(sys.argv[1])["batches"]
if len(batches) != 1:
    sys.exit(f"demo: expected exactly one nightly-e2e batch, found {len(batches)}")
variables = {v["name"]: v["value"] for v in batches[0].get("environmentVariables") or []}
print(f"    one batch, {batches[0]['id']}, with E2E_SUITE={variables.get('E2E_SUITE')}")
if variables.get("E2E_SUITE") != "smoke":
    sys.exit("demo: the batch does not carry the variable the trigger asked for")
PY
nightly_id="$("$py" -c 'import json, sys; print(json.loads(sys.argv[1])["batches"][0]["id"])' "$nightly")"

echo
echo "An operator stops it through the ops API (IAM-signed; every POST carries an Idempotency-Key)."
echo "Sent twice, as a client retrying after a timeout would: one StopBuildBatch, the same answer."
ask POST "/batches/$nightly_id/stop" "" "stop-nightly-1"
ask POST "/batches/$nightly_id/stop" "" "stop-nightly-1"
echo
echo "==> autopilot batches list nightly-e2e --output table"
AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 \
  "$bin/autopilot" batches list nightly-e2e --endpoint-url "$emulator" --output table |
  sed 's/^/    /'

echo
echo "Done; stopping codebuild-local, moto and lambda-harness."
