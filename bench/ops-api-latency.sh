#!/usr/bin/env bash
# Latency and memory of the ops-api binary, as a Lambda sandbox runs it: codebuild-local on
# 127.0.0.1, the binary behind lambda-harness's Invoke API, GET /builds/{id} for a seeded build.
# Prints the first request (new SDK connection) and the warm median/p90 over N requests, and the
# function process's resident memory. A benchmark, not a test: nothing here asserts a time.
#   usage: bench/ops-api-latency.sh [release|debug] [N]     (make bench runs it on release)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile=${1:-release}
n=${2:-200}
py="$root/.venv/bin/python3"
dbg="$root/target/debug"
fn_bin="$root/target/$profile/ops-api"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
require_executables "$dbg/codebuild-local" "$dbg/lambda-harness" "$fn_bin"

start_emulator
# The read routes load neither the configuration nor the ledger; the function only insists
# that both are named.
"$dbg/lambda-harness" --port 0 --function "ops-api=$fn_bin" \
  --env "AWS_ENDPOINT_URL_CODEBUILD=$emulator" --env AWS_REGION=us-east-1 \
  --env AWS_ACCESS_KEY_ID=bench --env AWS_SECRET_ACCESS_KEY=bench \
  --env AUTOPILOT_CONFIG_URI=file:/nonexistent --env AUTOPILOT_LEDGER_TABLE=unused >"$work/h.out" 2>/dev/null & pids+=("$!")
harness="$(wait_url "$work/h.out")"

"$py" - "$emulator" "$harness" "$root/tests/fixtures/apigw-http-v2-request.json" "$n" "$profile" <<'PY'
import json, statistics, sys, time, urllib.request
emulator, harness, sample, n, profile = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
seed = urllib.request.Request(f"{emulator}/_local/builds", method="POST",
                              data=b'{"projectName":"web","buildStatus":"FAILED"}',
                              headers={"Content-Type": "application/json"})
build_id = json.loads(urllib.request.urlopen(seed).read())["id"]
event = json.load(open(sample))
path = f"/builds/{build_id}"
event.update(routeKey="GET /builds/{id}", rawPath=path, rawQueryString="", isBase64Encoded=False)
event.pop("queryStringParameters", None); event.pop("body", None)
event["pathParameters"] = {"id": build_id}
event["requestContext"]["http"].update(method="GET", path=path)
body = json.dumps(event).encode()
url = f"{harness}/2015-03-31/functions/ops-api/invocations"
times = []
for _ in range(n + 1):
    start = time.perf_counter()
    answer = json.loads(urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")).read())
    times.append((time.perf_counter() - start) * 1000)
    assert answer["statusCode"] == 200, answer
warm = sorted(times[1:])
print(f"ops-api ({profile}): first request {times[0]:.1f} ms; warm over {n}: "
      f"median {statistics.median(warm):.2f} ms, p90 {warm[int(0.9 * len(warm)) - 1]:.2f} ms "
      f"(includes the harness and the emulator on 127.0.0.1)")
PY
rss_kb="$(ps -o rss= -C ops-api | head -n 1 | tr -d ' ')"
echo "ops-api ($profile): resident memory after the run ${rss_kb} KiB; binary $(du -h "$fn_bin" | cut -f1)"
