#!/usr/bin/env bash
# Seeds a sample organisation in the local AWS stack (two accounts, two regions, a few clusters,
# one paused, a Serverless workgroup) with sample warehouses behind the Data API emulator, runs
# the function once on events/scheduled.json, and shows what it wrote. Safe to run again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/demo-env.sh
export PATH="$root/.venv/bin:$PATH"

bucket=demo-registry
aws s3api create-bucket --bucket "$bucket" >/dev/null 2>&1 || true

# Runs the aws CLI as account $1 (moto keys assumed-role credentials to the role's account).
as_account() {
  local account=$1; shift
  read -r key secret token < <(aws sts assume-role --role-arn "arn:aws:iam::$account:role/DemoSeeder" \
    --role-session-name demo-seed --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)
  AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_SESSION_TOKEN=$token aws "$@"
}

# The warehouse behind a cluster or workgroup: its databases in the emulator, from the sample SQL
# (and, with DEMO_EXTRA_SQL, that file's too).
warehouse() { # account name database...
  local account=$1 name=$2; shift 2
  local sql dbs=()
  sql=$(python3 -c 'import json,sys; print(json.dumps("".join(open(f).read() for f in sys.argv[1:])))' \
    scripts/demo-warehouse.sql ${DEMO_EXTRA_SQL:-})
  for db in "$@"; do dbs+=("{\"name\": \"$db\", \"sql\": $sql}"); done
  local IFS=,
  curl -sf -X POST "$EMULATOR_URL/_emulator/warehouses" \
    -d "{\"accountId\": \"$account\", \"target\": \"$name\", \"databases\": [${dbs[*]}]}" >/dev/null
}

cluster() { # account region id node-type tags...
  local account=$1 region=$2 id=$3 node=$4; shift 4
  warehouse "$account" "$id" dev
  as_account "$account" redshift describe-clusters --region "$region" --cluster-identifier "$id" >/dev/null 2>&1 && return
  as_account "$account" redshift create-cluster --region "$region" --cluster-identifier "$id" --node-type "$node" \
    --cluster-type single-node --master-username admin --master-user-password 'Demo-Passw0rd' --db-name dev \
    --tags "$@" >/dev/null
}

# The demo owns accounts 111111111111 and 222222222222 (the tests use accounts of their own): a
# cluster there that the demo does not seed, left in this long-lived moto by something else (an
# older test run, say), is deleted, so the run shows the demo organisation and nothing more.
prune() { # account region cluster-to-keep...
  local account=$1 region=$2 id; shift 2
  for id in $(as_account "$account" redshift describe-clusters --region "$region" \
    --query 'Clusters[].ClusterIdentifier' --output text); do
    [[ $id == None || " $* " == *" $id "* ]] && continue
    echo "== deleting cluster $id of account $account in $region: not part of the demo" >&2
    as_account "$account" redshift delete-cluster --region "$region" --cluster-identifier "$id" \
      --skip-final-cluster-snapshot >/dev/null
  done
}
prune 111111111111 us-east-1 sales marketing
prune 111111111111 eu-west-1 finance-eu
prune 111111111111 ap-southeast-2
prune 222222222222 us-east-1 sales archive

cluster 111111111111 us-east-1 sales ra3.xlplus Key=team,Value=sales Key=env,Value=prod
cluster 111111111111 us-east-1 marketing ra3.xlplus Key=team,Value=marketing
cluster 111111111111 eu-west-1 finance-eu ra3.4xlarge Key=team,Value=finance
cluster 222222222222 us-east-1 sales dc2.large Key=team,Value=emea-sales
cluster 222222222222 us-east-1 archive dc2.large Key=team,Value=archive
as_account 222222222222 redshift pause-cluster --region us-east-1 --cluster-identifier archive >/dev/null 2>&1 || true
# marketing has a second database; moto has no Serverless, so the emulator serves the workgroup.
warehouse 111111111111 marketing dev campaigns
DEMO_EXTRA_SQL=scripts/demo-producer.sql warehouse 111111111111 sales dev
DEMO_EXTRA_SQL=scripts/demo-consumer.sql warehouse 222222222222 sales dev
warehouse 111111111111 analytics warehouse
curl -sf -X POST "$EMULATOR_URL/_emulator/workgroups" \
  -d '{"region": "ap-southeast-2", "workgroupName": "analytics", "namespaceName": "analytics-ns", "dbName": "warehouse", "accountId": "111111111111"}' >/dev/null

cargo build --quiet --bin redshift-registry
echo "== redshift-registry --event events/scheduled.json (the report on stdout, then a summary on stderr)" >&2
./target/debug/redshift-registry --event events/scheduled.json | tee .run/demo-report.json
echo >&2
# A consumer names its datashare's producer warehouse once the producer's namespace record is
# published; the two accounts run side by side, so the second run is the one sure to have it.
echo "== a second run: the consumer in 222222222222 now finds the producer's namespace record" >&2
./target/debug/redshift-registry --event events/scheduled.json >.run/demo-report-2.json 2>/dev/null
echo "== what it wrote to s3://$bucket/redshift/ (the report above is runs/<runId>.json)" >&2
aws s3 ls --recursive "s3://$bucket/redshift/index/" >&2
echo "== one manifest: sales.orders of cluster sales in account 111111111111" >&2
# orders.json, or orders/<sha256>.json in the layout before issue 9.
key=$(aws s3api list-objects-v2 --bucket "$bucket" --prefix "redshift/datasets/111111111111/us-east-1/cluster/sales/dev/sales/orders" --query 'Contents[0].Key' --output text)
aws s3 cp "s3://$bucket/$key" - >&2
echo "== lineage: what sales.top_orders reads (from the catalog) and the consumer's orders (a datashare)" >&2
aws s3 cp "s3://$bucket/redshift/datasets/111111111111/us-east-1/cluster/sales/dev/sales/top_orders.json" - \
  | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["upstream"], indent=1))' >&2
echo "== the producer's namespace record, and the consumer's orders: a datashare link between two warehouses" >&2
aws s3 cp "s3://$bucket/redshift/namespaces/a1b2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d.json" - >&2
aws s3 cp "s3://$bucket/redshift/datasets/222222222222/us-east-1/cluster/sales/sales_from_hq/sales/orders.json" - \
  | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["upstream"], indent=1))' >&2
