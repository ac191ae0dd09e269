#!/usr/bin/env bash
# Installs every tool the tests, the demo and the emulator need. Idempotent: a second run only checks.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${REGISTRY_VENV:-$root/.venv}"

# Pinned: moto >= 5.2.5 fixes S3 checksums and timestamps; cargo-lambda ships its binary in the wheel,
# and cross-compiles the arm64 Lambda artifact with Zig (the ziglang wheel ships it too). aws-sam-cli
# (`sam validate --lint` in make lint, `sam build`) pins boto3 exactly (1.43.108 for 1.170.0), and
# aws-sam-translator and cfn-lint to ranges the pins here must stay in (translator ==1.115.0,
# cfn-lint <1.59): bump them together. awscli 1.x bundles its own botocore and is unaffected.
py_pins=(
  "moto[server]==5.2.5"
  "cargo-lambda==1.9.2"
  "ziglang==0.17.1"
  "cfn-lint==1.58.0"
  "awscli==1.46.3"
  "aws-sam-translator==1.115.0"
  "aws-sam-cli==1.170.0"
)

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
missing=0
for pin in "${py_pins[@]}"; do
  name="${pin%%[*}"; name="${name%%==*}"; want="${pin##*==}"
  have="$("$venv/bin/python" -m pip show "$name" 2>/dev/null | awk '/^Version:/{print $2}' || true)"
  [ "$have" = "$want" ] || missing=1
done
if [ "$missing" = 1 ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${py_pins[@]}"
fi

# The OpenLineage project's Python client checks the OpenLineage events in the tests. It has a
# venv of its own: its requests/attrs/PyYAML ranges need not agree with aws-sam-cli's pins.
ol_venv="${REGISTRY_OPENLINEAGE_VENV:-$root/.venv-openlineage}"
ol_pin="openlineage-python==1.54.0"
[ -x "$ol_venv/bin/python" ] || python3 -m venv "$ol_venv"
if [ "$("$ol_venv/bin/python" -m pip show openlineage-python 2>/dev/null | awk '/^Version:/{print $2}')" != "${ol_pin##*==}" ]; then
  "$ol_venv/bin/python" -m pip install --quiet --disable-pip-version-check "$ol_pin"
fi

# PostgreSQL server binaries back the Data API emulator; curl waits for the services. qemu-user
# and the aarch64 C library run the arm64 Lambda artifact, and file checks it (make deploy-check).
debs=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || debs+=(postgresql)
command -v curl >/dev/null 2>&1 || debs+=(curl)
command -v qemu-aarch64 >/dev/null 2>&1 || debs+=(qemu-user)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || debs+=(libc6-arm64-cross)
command -v file >/dev/null 2>&1 || debs+=(file)
if [ ${#debs[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >/dev/null
fi

# The real Backstage packages read the Backstage output in tests (tests/backstage, pinned by its
# package-lock.json); reinstalled only when the lock file changed.
bs="$root/tests/backstage"
if ! cmp -s "$bs/package-lock.json" "$bs/node_modules/.package-lock.json.installed" 2>/dev/null; then
  (cd "$bs" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$bs/package-lock.json" "$bs/node_modules/.package-lock.json.installed"
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
# make lint runs clippy, a rustup component of the toolchain (the default profile has it).
if ! cargo clippy --version >/dev/null 2>&1; then
  timeout 120 rustup component add clippy >/dev/null 2>&1 \
    || echo "install: warning: clippy is not installed and rustup could not fetch it; make lint skips it" >&2
fi
# A clean CI run (make test, then make deploy-check) fills 3.8 GB of target/; cargo's own error
# when the disk fills is a linker crash, so say it first.
target_dir="${CARGO_TARGET_DIR:-$root/target}"
while [ ! -d "$target_dir" ]; do target_dir="$(dirname "$target_dir")"; done
free_kb="$(df -Pk "$target_dir" | awk 'NR==2{print $4}')"
if [ "${free_kb:-0}" -lt 4194304 ]; then
  echo "install: warning: only $((free_kb / 1024)) MiB free where target/ is ($target_dir); a clean" \
    "build needs about 4 GB (free space, or point CARGO_TARGET_DIR at a larger disk)" >&2
fi
echo "install: tools ready in $venv"
