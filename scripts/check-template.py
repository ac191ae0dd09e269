#!/usr/bin/env python3
"""Offline equivalent of `sam validate --lint`: cfn-lint, then the SAM transform done locally by
aws-sam-translator, then checks that the transformed template is what the code expects."""
import json
import os
import subprocess
import sys
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

root = Path(__file__).resolve().parent.parent
template_path = root / "template.yaml"

lint = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(template_path)], capture_output=True, text=True)
if lint.returncode != 0:
    sys.exit(f"cfn-lint failed:\n{lint.stdout}{lint.stderr}")


class NoManagedPolicies:
    """The template names no managed policies; a lookup would need AWS, so refuse it."""

    def load(self):
        raise SystemExit("the template must not depend on AWS managed policies")


# The transform resolves pseudo parameters such as AWS::Region; any region will do offline.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
template = yaml_parse(template_path.read_text())
# Like `sam validate`: local CodeUri paths stand for the artifact `sam package` uploads.
for resource in template["Resources"].values():
    if resource["Type"] == "AWS::Serverless::Function":
        resource["Properties"]["CodeUri"] = "s3://artifacts/redshift-registry.zip"
out = transform(template, {}, NoManagedPolicies())
res = out["Resources"]
errors = []

fn = res["RegistryFunction"]["Properties"]
if fn.get("Runtime") != "provided.al2023" or fn.get("Architectures") != ["arm64"]:
    errors.append("the function must be provided.al2023 on arm64")
env = fn["Environment"]["Variables"]
for var in ["REGISTRY_CONFIG_URI", "REGISTRY_OUTPUT_BUCKET", "REGISTRY_OUTPUT_PREFIX", "REGISTRY_ROLE_NAME"]:
    if var not in env:
        errors.append(f"environment variable {var} missing")

schedules = [r for r in res.values() if r["Type"] == "AWS::Scheduler::Schedule"]
if len(schedules) != 1:
    errors.append("expected one EventBridge Scheduler schedule")
else:
    payload = json.loads(schedules[0]["Properties"]["Target"]["Input"])
    if payload.get("source") != "aws.events" or payload.get("detail-type") != "Scheduled Event":
        errors.append(f"the schedule's payload is not a scheduled event: {payload}")
    scheduled = json.loads((root / "events/scheduled.json").read_text())
    if {k: scheduled[k] for k in ("source", "detail-type")} != {k: payload[k] for k in ("source", "detail-type")}:
        errors.append("events/scheduled.json and the schedule's payload disagree")

role = res["RegistryFunctionRole"]["Properties"]
actions = sorted(
    a
    for p in role.get("Policies", [])
    for st in p["PolicyDocument"]["Statement"]
    for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
)
allowed = ["s3:DeleteObject", "s3:GetObject", "s3:GetObject", "s3:ListBucket", "s3:PutObject", "sts:AssumeRole"]
if actions != allowed:
    errors.append(f"the function's policy allows {actions}, expected exactly {allowed}")
for p in role.get("Policies", []):
    for st in p["PolicyDocument"]["Statement"]:
        if st.get("Resource") == "*":
            errors.append(f"statement {st.get('Sid')} is not scoped to a resource")
        if st.get("Action") == "s3:ListBucket" and "s3:prefix" not in json.dumps(st.get("Condition", {})):
            errors.append("s3:ListBucket must be limited to the output prefix")

if errors:
    sys.exit("template check failed:\n- " + "\n- ".join(errors))
print("template: cfn-lint clean; SAM transform ok; schedule payload, runtime and IAM scope as expected")
