#!/usr/bin/env bash
# Prints the sha256 of every object a run published under s3://BUCKET/PREFIX (manifests, Backstage
# entities, OpenLineage events, namespace records), leaving out indexes and run reports, which name
# their run, and the `eventTime` of OpenLineage events, which dates the run that first wrote them.
# Two trees that print the same lines published the same bytes: run it after `make demo` (or a
# bench with BENCH_KEEP=1) before and after a change (docs/development.md).
set -euo pipefail
bucket=${1:?usage: outputs-digest.sh BUCKET [PREFIX]}
prefix=${2:-}
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/demo-env.sh
# One boto3 client for the whole tree: an `aws` process per object takes minutes at 2,000 tables.
"$root/.venv/bin/python" - "$bucket" "$prefix" <<'PY'
import hashlib, re, sys
import boto3

bucket, prefix = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3")
keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    keys += [o["Key"] for o in page.get("Contents", [])]
for key in sorted(k for k in keys if "/index/" not in k and "/runs/" not in k):
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    body = re.sub(rb'"eventTime":"[^"]*"', b'"eventTime":""', body)
    print(f"{hashlib.sha256(body).hexdigest()}  {key}")
PY
