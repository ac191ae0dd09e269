#!/usr/bin/env bash
# Starts the local AWS stack (moto server) on a free loopback port, unless it already runs.
# Writes .run/services.env, which the Makefile, the tests and the demo read.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${REGISTRY_VENV:-$root/.venv}"
run="$root/.run"
mkdir -p "$run"

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

if alive moto && curl -sf "http://127.0.0.1:$(cat "$run/moto.port")/moto-api/" >/dev/null 2>&1; then
  :
else
  port="$(free_port)"
  # moto keys resources by account: credentials from AssumeRole act in the role's account.
  nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$run/moto.log" 2>&1 &
  echo $! >"$run/moto.pid"
  echo "$port" >"$run/moto.port"
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null || { echo "moto did not start; see $run/moto.log" >&2; exit 1; }
fi

cat >"$run/services.env" <<ENV
export MOTO_URL=http://127.0.0.1:$(cat "$run/moto.port")
ENV
echo "services: moto at http://127.0.0.1:$(cat "$run/moto.port")"
