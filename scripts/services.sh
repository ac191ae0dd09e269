#!/usr/bin/env bash
# Starts the local AWS stack on free loopback ports, each part unless it already runs: moto (STS,
# Redshift, S3), PostgreSQL, and the Data API emulator in front of it (rebuilt, and restarted when
# rebuilt). Writes .run/services.env, which the Makefile, the tests and the demo read.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${REGISTRY_VENV:-$root/.venv}"
run="$root/.run"
mkdir -p "$run"

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# serve NAME HEALTH-PATH COMMAND...: runs COMMAND (PORT in it becomes a free port) until
# http://127.0.0.1:PORT/HEALTH-PATH answers, unless an earlier start of it still answers.
serve() {
  local name=$1 health=$2 port
  shift 2
  if alive "$name" && curl -sf "http://127.0.0.1:$(cat "$run/$name.port")$health" >/dev/null 2>&1; then
    return
  fi
  if [ -f "$run/$name.pid" ]; then kill "$(cat "$run/$name.pid")" 2>/dev/null || true; fi
  port="$(free_port)"
  nohup "${@//PORT/$port}" >"$run/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
  echo "$port" >"$run/$name.port"
  # Up to 2 minutes: the emulator first drops an earlier run's databases (a benchmark's are large).
  for _ in $(seq 1 1200); do
    curl -sf "http://127.0.0.1:$port$health" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "$name did not start; see $run/$name.log" >&2
  exit 1
}

# moto keys resources by account: credentials from AssumeRole act in the role's account.
serve moto /moto-api/ "$venv/bin/moto_server" -H 127.0.0.1 -p PORT

# PostgreSQL behind the Data API emulator: own data dir, loopback only, trust auth (it holds
# nothing but fixtures). initdb refuses root, so as root the cluster belongs to the postgres
# user, in a directory of its own outside the checkout (which it may not be able to enter).
pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
pghome="${REGISTRY_PGHOME:-$run/pg}"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  as_pg=(runuser -u postgres --)
  pghome="${REGISTRY_PGHOME:-/tmp/redshift-registry-pg-$(printf '%s' "$root" | md5sum | cut -c1-10)}"
fi
mkdir -p "$pghome"
if [ "$(id -u)" = 0 ]; then chown postgres "$pghome"; fi
pgdata="$pghome/data"
if ! { [ -f "$run/pg.port" ] && "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$(cat "$run/pg.port")"; }; then
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    rm -rf "$pgdata"
    "${as_pg[@]}" "$pgbin/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  port="$(free_port)"
  echo "$port" >"$run/pg.port"
  echo "$pgdata" >"$run/pg.datadir"
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -l "$pghome/pg.log" -w \
    -o "-p $port -k $pgdata -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
fi
pg_port="$(cat "$run/pg.port")"

# The Data API emulator, built from this repo; a rebuilt one, or one asking an earlier moto
# which account a key belongs to, is replaced.
# EMULATOR_PROFILE=release (make bench) builds it optimised, so that the emulator's own speed
# does not weigh on the figures.
profile="${EMULATOR_PROFILE:-debug}"
emulator="$root/target/$profile/redshift-data-emulator"
sts="http://127.0.0.1:$(cat "$run/moto.port")"
cargo build --quiet -p redshift-data-emulator --profile "$([ "$profile" = debug ] && echo dev || echo "$profile")" \
  --manifest-path "$root/Cargo.toml"
if [ -f "$run/emulator.pid" ] && { [ "$emulator" -nt "$run/emulator.pid" ] || [ "$(cat "$run/emulator.sts" 2>/dev/null)" != "$sts" ] \
  || [ "$(cat "$run/emulator.profile" 2>/dev/null)" != "$profile" ]; }; then
  kill "$(cat "$run/emulator.pid")" 2>/dev/null || true
  rm -f "$run/emulator.pid"
fi
echo "$sts" >"$run/emulator.sts"
echo "$profile" >"$run/emulator.profile"
serve emulator /_emulator/health "$emulator" --listen 127.0.0.1:PORT --postgres "host=127.0.0.1 port=$pg_port user=postgres" \
  --sts-endpoint "$sts"

cat >"$run/services.env" <<ENV
export MOTO_URL=http://127.0.0.1:$(cat "$run/moto.port")
export EMULATOR_URL=http://127.0.0.1:$(cat "$run/emulator.port")
export PG_PORT=$pg_port
ENV
echo "services: moto at http://127.0.0.1:$(cat "$run/moto.port"), Data API emulator at http://127.0.0.1:$(cat "$run/emulator.port"), PostgreSQL on 127.0.0.1:$pg_port"
