# Shared by the bench scripts (sourced, not run): a scratch folder, the background processes
# started into it, reading a server's URL from its "listening on URL" line, and starting
# codebuild-local and moto's server.
# KEEP_WORK=1 keeps the scratch folder (call logs, function output) for a look afterwards.
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "bench: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

require_executables() { # each argument must be an executable file, or the bench stops here
  for b in "$@"; do
    [[ -x "$b" ]] || { echo "bench: $b missing (make bench builds it)" >&2; exit 1; }
  done
}

wait_url() { # file → URL from its "listening on URL" line
  for _ in $(seq 1 300); do
    url="$(sed -n 's/.* listening on \(http[^ ]*\).*/\1/p' "$1" | head -n 1)"
    [[ -n "$url" ]] && { echo "$url"; return 0; }
    sleep 0.1
  done
  return 1
}

start_moto() { # moto's server on a free 127.0.0.1 port; sets moto (its URL) and moto_port
  moto_port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
  pids+=("$!")
  moto="http://127.0.0.1:$moto_port"
}

start_emulator() { # the debug codebuild-local on a free port; sets emulator (its URL)
  "$root/target/debug/codebuild-local" --port 0 >"$work/cbl.out" 2>/dev/null &
  pids+=("$!")
  emulator="$(wait_url "$work/cbl.out")"
}
