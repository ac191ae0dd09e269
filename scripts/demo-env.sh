# The demo organisation's function environment, sourced by scripts/demo.sh and
# scripts/deploy-check.sh so both run the function the same way: the function's own identity in
# the local stack (moto accepts any keys), the endpoints, and the demo config.
. "$(dirname "${BASH_SOURCE[0]}")/../.run/services.env"
export AWS_ACCESS_KEY_ID=AKIADEMOFUNCTION0001 AWS_SECRET_ACCESS_KEY=demo-secret AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="$MOTO_URL" REGISTRY_S3_FORCE_PATH_STYLE=true
export AWS_ENDPOINT_URL_REDSHIFT_DATA="$EMULATOR_URL" AWS_ENDPOINT_URL_REDSHIFT_SERVERLESS="$EMULATOR_URL"
export REGISTRY_CONFIG='{
  "output": {"bucket": "demo-registry", "prefix": "redshift/"},
  "roleName": "DataRegistryRedshiftReader",
  "outputs": {"backstage": {"owner": "group:default/data-platform"}, "openlineage": {}},
  "sources": [
    {"accountId": "111111111111", "regions": ["us-east-1", "eu-west-1", "ap-southeast-2"]},
    {"accountId": "222222222222", "roleArn": "arn:aws:iam::222222222222:role/Custom",
     "clusters": [{"region": "us-east-1", "clusterIdentifier": "sales"},
                  {"region": "us-east-1", "clusterIdentifier": "archive"}]}
  ]
}'
