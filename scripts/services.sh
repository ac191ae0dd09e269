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
[ "$(id -u)" = 0 ] && chown postgres "$pghome"
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

# The Data API emulator, built from this repo.
emulator="$root/target/debug/redshift-data-emulator"
cargo build --quiet -p redshift-data-emulator --manifest-path "$root/Cargo.toml"
# A rebuilt emulator replaces the running one.
if [ -f "$run/emulator.pid" ] && [ "$emulator" -nt "$run/emulator.pid" ]; then
  kill "$(cat "$run/emulator.pid")" 2>/dev/null || true
  rm -f "$run/emulator.pid"
fi
if ! { alive emulator && curl -sf "http://127.0.0.1:$(cat "$run/emulator.port")/_emulator/health" >/dev/null 2>&1; }; then
  [ -f "$run/emulator.pid" ] && kill "$(cat "$run/emulator.pid")" 2>/dev/null || true
  port="$(free_port)"
  nohup "$emulator" --listen "127.0.0.1:$port" --postgres "host=127.0.0.1 port=$pg_port user=postgres" >"$run/emulator.log" 2>&1 &
  echo $! >"$run/emulator.pid"
  echo "$port" >"$run/emulator.port"
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/_emulator/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/_emulator/health" >/dev/null || { echo "the emulator did not start; see $run/emulator.log" >&2; exit 1; }
fi

cat >"$run/services.env" <<ENV
export MOTO_URL=http://127.0.0.1:$(cat "$run/moto.port")
export EMULATOR_URL=http://127.0.0.1:$(cat "$run/emulator.port")
export PG_PORT=$pg_port
ENV
echo "services: moto at http://127.0.0.1:$(cat "$run/moto.port"), Data API emulator at http://127.0.0.1:$(cat "$run/emulator.port"), PostgreSQL on 127.0.0.1:$pg_port"
