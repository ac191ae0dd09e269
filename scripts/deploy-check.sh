#!/usr/bin/env bash
# Builds the artifact with `sam build` itself (template.yaml: BuildMethod rust-cargolambda on
# arm64, which runs `cargo lambda build --release --arm64` into target/) and runs that aarch64
# bootstrap, as sam copied it to .aws-sam/build/, once under
# qemu-user against the local stack: a dry run over the demo organisation, which it seeds first
# with scripts/demo.sh. Needs the services running (`make deploy-check` starts them).
# Exit codes: 0 built, ran, and the dry run succeeded with the demo's counts; 3 the Rust standard
# library for aarch64-unknown-linux-gnu is not installed and rustup could not fetch it (nothing
# was built); 1 anything else.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="${REGISTRY_VENV:-$root/.venv}"
# cargo-lambda and Zig (pip ziglang, found by cargo-lambda as `python3 -m ziglang`) come from the venv.
export PATH="$venv/bin:$PATH"
target=aarch64-unknown-linux-gnu
bootstrap=.aws-sam/build/RegistryFunction/bootstrap
sysroot=/usr/aarch64-linux-gnu
run="$root/.run"

fail() { echo "deploy-check: $*" >&2; exit 1; }

# 1. The aarch64 standard library. rustup fetches it from the Rust toolchain server, which a
# machine may not reach; then nothing here can be built, and the exit code says so.
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "deploy-check: installing the Rust standard library for $target (rustup target add)" >&2
  if ! timeout 60 rustup target add "$target" >&2; then
    echo "deploy-check: cannot build the arm64 Lambda artifact: the Rust standard library for $target" \
      "is not installed and \`rustup target add $target\` failed (it downloads from the Rust toolchain" \
      "server, which this machine may not reach). Run it where that works, then make deploy-check again." >&2
    exit 3
  fi
fi
[ -f "$run/services.env" ] || fail "the local stack is not running: run make deploy-check (or make services first)"
python3 -m ziglang version >/dev/null 2>&1 || fail "Zig is missing (pip ziglang in $venv): run make install"
command -v qemu-aarch64 >/dev/null 2>&1 || fail "qemu-aarch64 is missing (Debian qemu-user): run make install"
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || fail "the aarch64 C library is missing (Debian libc6-arm64-cross): run make install"

# 2. The artifact, built by sam build as `sam deploy` would upload it (its cargo-lambda build
# shares target/ with every other build here). No telemetry: the machine may be offline.
echo "== sam build --template template.yaml" >&2
start=$(date +%s)
rm -f "$bootstrap"
SAM_CLI_TELEMETRY=0 sam build --template template.yaml >&2
secs=$(($(date +%s) - start))
kind="$(file -b "$bootstrap")"
case "$kind" in
  *"ARM aarch64"*) ;;
  *) fail "$bootstrap is not an aarch64 executable: $kind" ;;
esac
size=$(stat -c %s "$bootstrap")
echo "deploy-check: built $bootstrap in ${secs}s: $(awk -v b="$size" 'BEGIN{printf "%.1f", b/1e6}') MB, $kind" >&2

# 3. The demo organisation (two accounts, four regions, clusters and a workgroup), seeded and run
# once natively by scripts/demo.sh, whose report is the reference for the counts below.
echo "== scripts/demo.sh (seeds the demo organisation; log in .run/deploy-check-demo.log)" >&2
if ! bash scripts/demo.sh >"$run/deploy-check-demo.log" 2>&1; then
  tail -n 30 "$run/deploy-check-demo.log" >&2
  fail "scripts/demo.sh failed; see .run/deploy-check-demo.log"
fi

# 4. The bootstrap under qemu, with the environment scripts/demo.sh gives its own run, on a
# manual dry-run event.
. "$root/scripts/demo-env.sh"
echo '{"dryRun": true}' >"$run/deploy-check-event.json"
echo "== qemu-aarch64 -L $sysroot $bootstrap --event .run/deploy-check-event.json (log in .run/deploy-check.log)" >&2
start=$(date +%s)
if ! qemu-aarch64 -L "$sysroot" "$bootstrap" --event "$run/deploy-check-event.json" \
  >"$run/deploy-check-report.json" 2>"$run/deploy-check.log"; then
  tail -n 30 "$run/deploy-check.log" >&2
  fail "the aarch64 bootstrap failed under qemu; see .run/deploy-check.log and .run/deploy-check-report.json"
fi
echo "deploy-check: the aarch64 bootstrap ran under qemu in $(($(date +%s) - start))s" >&2

python3 - "$run/deploy-check-report.json" "$run/demo-report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
demo = json.load(open(sys.argv[2]))
counts, problems = report["counts"], []
if report["status"] != "succeeded":
    problems.append(f"status is {report['status']}, not succeeded")
if report.get("dryRun") is not True:
    problems.append("the run was not a dry run")
if "reportKey" in report:
    problems.append(f"a dry run wrote {report['reportKey']}")
# What was found must match the demo's native run of the same organisation.
found = ["accounts", "regions", "warehouses", "warehousesAvailable", "warehousesSkipped",
         "databases", "datasets"]
for key in found:
    if counts[key] != demo["counts"][key]:
        problems.append(f"{key} is {counts[key]}, the demo's native run found {demo['counts'][key]}")
for key in ["accountsFailed", "regionsFailed", "warehousesFailed", "databasesFailed", "publishFailed"]:
    if counts[key]:
        problems.append(f"{key} is {counts[key]}")
print("deploy-check: dry run " + report["status"] + ": "
      + ", ".join(f"{k} {v}" for k, v in counts.items() if v or k in found))
if problems:
    print("deploy-check: FAILED: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("deploy-check: ok: the arm64 artifact sam build deploys ran a dry run of the demo organisation")
PY
