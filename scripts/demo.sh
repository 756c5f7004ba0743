#!/usr/bin/env bash
# `make demo`: the ops API end to end on this machine, no AWS account needed.
#
#   codebuild-local  (our local CodeBuild, seeded with a few builds)
#        ^  real AWS SDK calls (BatchGetBuilds)
#   ops-api          (the real Lambda binary, run through the Lambda Runtime API by ...)
#        ^  API Gateway HTTP API v2 events
#   lambda-harness   (Lambda's Invoke API on 127.0.0.1; failed async work → SQS in moto)
#        ^  this script
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

for tool in codebuild-local lambda-harness ops-api; do
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

# `ask METHOD PATH [QUERY]`: builds the API Gateway HTTP API v2 event for the request (from the
# AWS-shaped sample in tests/fixtures), invokes ops-api through the Invoke API and shows the answer.
ask() {
  local method=$1 path=$2 query=${3:-}
  local shown="$method $path${query:+?$query}"
  if ((${#shown} > 110)); then shown="${shown:0:107}..."; fi
  echo
  echo "==> $shown"
  "$py" - "$harness/2015-03-31/functions/ops-api/invocations" "$root/tests/fixtures/apigw-http-v2-request.json" \
    "$method" "$path" "$query" <<'PY'
import json, sys, urllib.request, uuid
url, sample, method, path, query = sys.argv[1:6]
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

echo "Starting moto's server (SQS for the dead-letter queue) ..."
moto_port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=("$!")
moto="http://127.0.0.1:$moto_port"
# boto3 comes with moto in .venv; it also waits until the server answers.
dlq="$("$py" - "$moto" <<'PY'
import sys, time, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="demo", aws_secret_access_key="demo")
for _ in range(300):
    try:
        print(sqs.create_queue(QueueName="autopilot-dlq")["QueueUrl"])
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("moto did not start")
PY
)"
echo "    $moto (dead-letter queue: $dlq)"

echo "Starting lambda-harness with the ops-api binary ..."
start_server lambda-harness "$bin/lambda-harness" --port 0 \
  --on-failure-queue "$dlq" --sqs-endpoint "$moto" \
  --function "ops-api=$bin/ops-api" \
  --env "AWS_ENDPOINT_URL_CODEBUILD=$emulator" \
  --env AWS_REGION=us-east-1 \
  --env AWS_ACCESS_KEY_ID=demo \
  --env AWS_SECRET_ACCESS_KEY=demo
harness=$server_url
echo "    $harness/2015-03-31/functions/ops-api/invocations"

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
echo "Done; stopping codebuild-local, moto and lambda-harness."
