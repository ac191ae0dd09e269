#!/usr/bin/env bash
# Prints the sha256 of every object a run published under s3://BUCKET/PREFIX (manifests, Backstage
# entities, OpenLineage events, namespace records), leaving out indexes and run reports, which name
# their run, and the `eventTime` of OpenLineage events, which dates the run that first wrote them. Two trees that print the same lines published the same bytes: run it after `make demo`
# before and after a change (docs/development.md).
set -euo pipefail
bucket=${1:?usage: outputs-digest.sh BUCKET [PREFIX]}
prefix=${2:-}
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/demo-env.sh
export PATH="$root/.venv/bin:$PATH"
aws s3api list-objects-v2 --bucket "$bucket" --prefix "$prefix" \
  --query 'Contents[].Key' --output text | tr '\t' '\n' | grep -v -e '/index/' -e '/runs/' -e '^None$' | sort \
  | while read -r key; do
      printf '%s  %s\n' "$(aws s3 cp "s3://$bucket/$key" - | sed -E 's/"eventTime":"[^"]*"/"eventTime":""/g' | sha256sum | cut -d' ' -f1)" "$key"
    done
