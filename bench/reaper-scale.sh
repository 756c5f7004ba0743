#!/usr/bin/env bash
# The batch reaper at scale, as a Lambda sandbox runs it: codebuild-local on 127.0.0.1 seeded
# with N in-progress batches over P projects (some stale, some superseded, the rest to be left,
# plus finished ones the IN_PROGRESS filter must hide), the batch-reaper binary behind
# lambda-harness's Invoke API, one scheduled sweep.
#
# From the emulator's call log it checks that the sweep made the minimum number of calls
# (ListProjects pages + ListBuildBatchesForProject pages + ceil(N/100) BatchGetBuildBatches + one
# StopBuildBatch per batch to stop, nothing else) and stopped exactly the expected batches; it
# reports calls per batch, the function's CPU-ms per 1,000 batches and peak memory (from /proc),
# and the invocation's wall time. Then, on a fresh emulator with 50% of all calls throttled, it
# sweeps (at most THROTTLE_RUNS times) until every batch to stop is stopped, and checks that
# none was stopped twice and none wrongly (counting only the stops the emulator accepted; the
# SDK resends throttled calls). A benchmark, not a test: the checks are on counts, never on a
# time.
#
#   usage: bench/reaper-scale.sh [debug|release] [N] [P]        (default: debug 10000 50)
#   env:   REAPER_CONCURRENCY (default 8, the template's), REAPER_TIMEOUT (default 120, the
#          template's), THROTTLE_RUNS (most throttled sweeps before giving up, default 6),
#          THROTTLE_MODE (random: each call throttled with probability 0.5, seeded — default;
#          even: every second call), KEEP_WORK=1 (keep the call logs)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile=${1:-debug}
n=${2:-10000}
projects=${3:-50}
concurrency=${REAPER_CONCURRENCY:-8}
timeout=${REAPER_TIMEOUT:-120}
throttle_runs=${THROTTLE_RUNS:-6}
py="$root/.venv/bin/python3"
[[ -x "$py" ]] || py="$(command -v python3)"
dbg="$root/target/debug"
fn_bin="$root/target/$profile/batch-reaper"
# The emulator in the same profile as the function: a debug emulator, not the sweep, would set
# the wall time of a release run.
emulator_bin="$root/target/$profile/codebuild-local"
for b in "$emulator_bin" "$dbg/lambda-harness" "$fn_bin"; do
  [[ -x "$b" ]] || { echo "bench: $b missing (cargo build --workspace --bins; make bench builds release)" >&2; exit 1; }
done
(( n % projects == 0 )) || { echo "bench: N must be a multiple of P" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# Every project matches one glob entry, so the sweep resolves them with ListProjects (as a real
# configuration of many projects would). Stale after 2 hours; superseding on (the default).
cat >"$work/autopilot.toml" <<'TOML'
[[projects]]
name = "bench-*"
[projects.reaper]
max_age_minutes = 120
TOML

emulator="" harness="" emulator_pid="" harness_pid=""
start_stack() { # fresh emulator and harness; sets emulator, harness and their pids
  local tag=$1
  "$emulator_bin" --port 0 >"$work/cbl-$tag.out" 2>/dev/null & emulator_pid=$!; pids+=("$emulator_pid")
  emulator="$(wait_url "$work/cbl-$tag.out")"
  "$dbg/lambda-harness" --port 0 --timeout-secs "$timeout" --function "batch-reaper=$fn_bin" \
    --env "AWS_ENDPOINT_URL=$emulator" --env "AWS_ENDPOINT_URL_CODEBUILD=$emulator" \
    --env AWS_REGION=us-east-1 --env AWS_ACCESS_KEY_ID=autopilot-batch-reaper \
    --env AWS_SECRET_ACCESS_KEY=bench --env "AUTOPILOT_CONFIG_URI=file:$work/autopilot.toml" \
    --env AUTOPILOT_CONFIG_TTL_SECONDS=60 --env "AUTOPILOT_PROJECT_PATTERNS=bench-*" \
    --env "AUTOPILOT_REAPER_CONCURRENCY=$concurrency" \
    >"$work/h-$tag.out" 2>/dev/null & harness_pid=$!; pids+=("$harness_pid")
  harness="$(wait_url "$work/h-$tag.out")"
}
stop_stack() {
  kill "$harness_pid" "$emulator_pid" 2>/dev/null || true
  wait "$harness_pid" "$emulator_pid" 2>/dev/null || true
}
function_pid() { # the batch-reaper process the harness started (its only child)
  pgrep -P "$harness_pid" | head -n 1
}

driver="$work/driver.py"
cat >"$driver" <<'PY'
"""Seeds, sweeps and checks; called by reaper-scale.sh with a sub-command."""
import collections, json, math, os, sys, time, urllib.request

def post(url, body, timeout=900):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as answer:
        return answer.status, dict(answer.headers), json.loads(answer.read() or b"null")

def delete(url):
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE")).read()

def get(url):
    return json.loads(urllib.request.urlopen(url, timeout=300).read())

def seed(emulator, n, projects, state_file):
    """Per project, n/projects in-progress batches: 20% stale (own branch, 3 h old), 30% in
    superseded pairs (older one stopped), 30% on `main` (protected, never superseded), 20% on
    their own young branch; plus 10% finished batches that must never be listed."""
    per = n // projects
    seeds, expect_stop, kinds = [], [], []
    for p in range(projects):
        name = f"bench-{p:02d}"
        plan = []
        stale, pairs, main = per * 20 // 100, per * 30 // 100 // 2, per * 30 // 100
        young = per - stale - 2 * pairs - main
        for i in range(stale):
            plan.append(("stale", f"stale-{i}", 3 * 3600, None))
        for k in range(pairs):
            plan.append(("superseded", f"feat-{k}", 30 * 60, None))   # seeded first: lower number
            plan.append(("left", f"feat-{k}", 5 * 60, None))
        for i in range(main):
            plan.append(("left", "main", 60 * (main - i), None))
        for i in range(young):
            plan.append(("left", f"young-{i}", 10 * 60, None))
        for i in range(per // 10):
            plan.append(("finished", f"stale-{i}", 6 * 3600, "SUCCEEDED"))
        for kind, branch, age, status in plan:
            s = {"projectName": name, "ageSeconds": age, "initiator": "bench-user",
                 "environmentVariables": [{"name": "AUTOPILOT_BRANCH", "value": branch, "type": "PLAINTEXT"}],
                 "builds": [{}, {}]}
            if status:
                s["buildBatchStatus"] = status
            seeds.append(s)
            kinds.append(kind)
    ids = []
    start = time.perf_counter()
    for chunk in range(0, len(seeds), 1000):
        _, _, answer = post(f"{emulator}/_local/batches/bulk", seeds[chunk:chunk + 1000])
        ids.extend(answer["ids"])
    took = time.perf_counter() - start
    state = {
        "in_progress": [i for i, k in zip(ids, kinds) if k != "finished"],
        "stop": {i: k for i, k in zip(ids, kinds) if k in ("stale", "superseded")},
        "finished": [i for i, k in zip(ids, kinds) if k == "finished"],
        "per_project": per,
        "projects": projects,
    }
    json.dump(state, open(state_file, "w"))
    print(f"seeded {len(state['in_progress'])} in-progress batches over {projects} projects "
          f"({len(state['stop'])} to stop) and {len(state['finished'])} finished ones in {took:.1f} s")

def proc(pid):
    """(CPU seconds, peak resident KiB) of a process, from /proc."""
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks     # utime, stime
    hwm = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return cpu, hwm

def sweep(harness, event_file, fn_pid, emulator_pid):
    event = json.load(open(event_file))
    cpu0, hwm0 = proc(fn_pid)
    ecpu0, _ = proc(emulator_pid)
    start = time.perf_counter()
    status, headers, summary = post(f"{harness}/2015-03-31/functions/batch-reaper/invocations", event)
    wall = time.perf_counter() - start
    cpu1, hwm1 = proc(fn_pid)
    ecpu1, _ = proc(emulator_pid)
    failed = headers.get("X-Amz-Function-Error") or headers.get("x-amz-function-error")
    if failed:
        sys.exit(f"the sweep failed: {summary}")
    return summary, {"wall_s": wall, "cpu_s": cpu1 - cpu0, "hwm_kib": hwm1, "hwm_before_kib": hwm0,
                     "emulator_cpu_s": ecpu1 - ecpu0}

def calls(emulator):
    return get(f"{emulator}/_local/calls")

def short(summary):
    keep = {k: summary.get(k) for k in ("projects", "seen", "stopped", "already_finished", "skipped", "dry_run")}
    keep["errors"] = len(summary.get("errors", []))
    keep["left"] = {k: len(v) for k, v in summary.get("left", {}).items()}
    return json.dumps(keep)

def batch_id(raw):
    return raw.split("/", 1)[1] if raw.startswith("arn:") else raw

def measure(emulator, harness, event_file, fn_pid, emulator_pid, state_file, out_file):
    state = json.load(open(state_file))
    n = len(state["in_progress"])
    delete(f"{emulator}/_local/calls")
    summary, m = sweep(harness, event_file, fn_pid, emulator_pid)
    log = calls(emulator)
    ops = collections.Counter(c["operation"] for c in log)
    problems = []
    if any(c.get("fault") for c in log):
        problems.append("faults in an unthrottled run")
    per = state["per_project"]
    expected = {
        "ListProjects": math.ceil(state["projects"] / 100),
        "ListBuildBatchesForProject": state["projects"] * max(1, math.ceil(per / 100)),
        # Batch-gets go per project (a chunk never mixes projects): ceil(per/100) each, which is
        # ceil(N/100) overall when every project's count is a multiple of 100.
        "BatchGetBuildBatches": state["projects"] * math.ceil(per / 100),
        "StopBuildBatch": len(state["stop"]),
    }
    if dict(ops) != expected:
        problems.append(f"calls {dict(ops)} != minimum {expected}")
    got = [batch_id(i) for c in log if c["operation"] == "BatchGetBuildBatches" for i in c["params"]["ids"]]
    if sorted(got) != sorted(state["in_progress"]):
        problems.append(f"batch-gets fetched {len(got)} ids ({len(set(got))} distinct), "
                        f"not each of the {n} in-progress batches once")
    if any(len(c["params"]["ids"]) > 100 for c in log if c["operation"] == "BatchGetBuildBatches"):
        problems.append("a batch-get of more than 100 ids")
    stops = [batch_id(c["params"]["id"]) for c in log if c["operation"] == "StopBuildBatch"]
    if sorted(stops) != sorted(state["stop"]):
        problems.append(f"stopped {len(stops)} ({len(set(stops))} distinct) != the {len(state['stop'])} expected")
    by_kind = collections.Counter(state["stop"].values())
    if summary.get("stopped") != {"stale": by_kind["stale"], "superseded": by_kind["superseded"]}:
        problems.append(f"summary stopped {summary.get('stopped')} != expected {dict(by_kind)}")
    if summary.get("seen") != n:
        problems.append(f"summary seen {summary.get('seen')} != {n}")
    total = sum(ops.values())
    result = {
        "n": n, "projects": state["projects"], "to_stop": len(state["stop"]), "calls": dict(ops),
        "minimum": expected, "calls_total": total, "calls_per_batch": total / n,
        "wall_s": m["wall_s"], "cpu_ms": m["cpu_s"] * 1000, "cpu_ms_per_1000": m["cpu_s"] * 1000 / (n / 1000),
        "emulator_cpu_ms": m["emulator_cpu_s"] * 1000,
        "peak_rss_kib": m["hwm_kib"], "peak_rss_before_kib": m["hwm_before_kib"],
        "problems": problems, "summary": short(summary),
    }
    json.dump(result, open(out_file, "w"))
    print(f"sweep: {short(summary)}")
    print(f"calls: {dict(ops)} = {total} ({total / n:.4f} per batch); minimum {expected}: "
          f"{'MET' if not problems else 'NOT MET'}")
    for p in problems:
        print(f"  PROBLEM: {p}")
    print(f"wall {m['wall_s']:.2f} s; function CPU {m['cpu_s'] * 1000:.0f} ms "
          f"({m['cpu_s'] * 1000 / (n / 1000):.1f} ms per 1,000 batches); emulator CPU "
          f"{m['emulator_cpu_s'] * 1000:.0f} ms; function peak RSS {m['hwm_kib'] / 1024:.1f} MiB "
          f"(after cold start {m['hwm_before_kib'] / 1024:.1f} MiB)")
    return 1 if problems else 0

def throttled(emulator, harness, event_file, fn_pid, emulator_pid, state_file, runs, out_file):
    state = json.load(open(state_file))
    # Random (seeded) by default: an evenly spread 50% (every second call) phase-locks with the
    # SDK's retries when two calls take turns, so one of them is throttled on every attempt.
    mode = os.environ.get("THROTTLE_MODE", "random")
    spec = {"throttleFraction": 0.5} if mode == "even" else {"throttleProbability": 0.5, "seed": 1}
    post(f"{emulator}/_local/faults", spec)
    print(f"throttling 50% of all calls ({mode}: {json.dumps(spec)})")
    delete(f"{emulator}/_local/calls")
    rows, accepted_before, accepted = [], 0, []
    converged = False
    for run in range(1, runs + 1):
        summary, m = sweep(harness, event_file, fn_pid, emulator_pid)
        log = calls(emulator)
        json.dump(log, open(f"{out_file}.calls-{run}.json", "w"))
        accepted = [batch_id(c["params"]["id"]) for c in log
                    if c["operation"] == "StopBuildBatch" and not c.get("fault")]
        faulted = sum(1 for c in log if c.get("fault"))
        row = {"run": run, "wall_s": m["wall_s"], "cpu_ms": m["cpu_s"] * 1000,
               "accepted_stops": len(accepted) - accepted_before, "errors": len(summary.get("errors", [])),
               "left": sum(len(v) for v in summary.get("left", {}).values()),
               "calls_so_far": len(log), "throttled_so_far": faulted, "summary": short(summary)}
        accepted_before = len(accepted)
        rows.append(row)
        print(f"throttled run {run}: wall {m['wall_s']:.1f} s, {row['accepted_stops']} stops accepted, "
              f"{row['errors']} errors, {row['left']} left; calls so far {len(log)} "
              f"({faulted} throttled); {short(summary)}")
        kinds = collections.Counter(e["message"].split(":")[0] for e in summary.get("errors", []))
        for kind, count in kinds.most_common():
            print(f"  errors: {count} × {kind}")
        # Converged: every batch to stop is stopped. Errors may go on (a listing or a get can
        # fail any run at this rate) but they only delay stops, which the next run makes.
        if set(accepted) >= set(state["stop"]):
            converged = True
            break
    counts = collections.Counter(accepted)
    twice = [i for i, k in counts.items() if k > 1]
    missing = set(state["stop"]) - set(counts)
    extra = set(counts) - set(state["stop"])
    problems = []
    if not converged:
        problems.append(f"not converged after {runs} runs")
    if twice:
        problems.append(f"{len(twice)} batches stopped twice")
    if missing or extra:
        problems.append(f"{len(missing)} to stop not stopped, {len(extra)} stopped wrongly")
    print(f"throttled: converged after {len(rows)} runs: {'yes' if converged else 'NO'}; "
          f"accepted stops {sum(counts.values())} of {len(state['stop'])} expected, "
          f"batches stopped twice: {len(twice)}")
    for p in problems:
        print(f"  PROBLEM: {p}")
    json.dump({"runs": rows, "problems": problems, "accepted": sum(counts.values()),
               "twice": len(twice), "to_stop": len(state["stop"])}, open(out_file, "w"))
    return 1 if problems else 0

if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "seed":
        seed(args[0], int(args[1]), int(args[2]), args[3])
    elif command == "measure":
        sys.exit(measure(*args))
    elif command == "throttled":
        sys.exit(throttled(*args[:6], int(args[6]), args[7]))
PY

event="$root/infra/events/batch-reaper-scheduled.json"
echo "batch-reaper ($profile) over $n batches in $projects projects; concurrency $concurrency, timeout ${timeout} s"
status=0

start_stack clean
"$py" "$driver" seed "$emulator" "$n" "$projects" "$work/state-clean.json"
"$py" "$driver" measure "$emulator" "$harness" "$event" "$(function_pid)" "$emulator_pid" \
  "$work/state-clean.json" "$work/clean.json" || status=1
stop_stack

start_stack throttled
"$py" "$driver" seed "$emulator" "$n" "$projects" "$work/state-thr.json"
"$py" "$driver" throttled "$emulator" "$harness" "$event" "$(function_pid)" "$emulator_pid" \
  "$work/state-thr.json" "$throttle_runs" "$work/throttled.json" || status=1
stop_stack

# The machine-readable results, for RESULTS.md.
"$py" - "$work/clean.json" "$work/throttled.json" "$timeout" <<'PY'
import json, sys
clean, thr, timeout = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
# Batches one invocation can sweep: the sweep scales with the batches (list, get, decide, and
# stops in proportion), so the time budget (the timeout less the sweep's own margin, a tenth
# or at most 5 s) over the wall time per batch measured here.
budget = timeout - min(timeout / 10, 5)
per_batch = clean["wall_s"] / clean["n"]
print(f"one {timeout} s invocation sweeps about {budget / per_batch:,.0f} batches at this rate "
      f"(60 s: {(60 - 5) / per_batch:,.0f}); by function CPU alone "
      f"{budget / (clean['cpu_ms'] / 1000 / clean['n']):,.0f}")
print("RESULT " + json.dumps({"clean": clean, "throttled": thr}))
PY
exit "$status"
