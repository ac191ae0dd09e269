#!/usr/bin/env python3
"""Offline equivalent of `sam validate --lint`: cfn-lint, then the SAM transform done locally by
aws-sam-translator, then checks that the transformed template is what the code expects: for
FanOut true and false (and OrganizationRoleArn and AlarmTopicArn set or not), the template as
CloudFormation gets it (conditions resolved) is linted again and checked: the fan-out resources
exist only with FanOut=true, the event source mapping takes one shard at a time and reports
batch item failures, the queue's visibility timeout is at least 6x the function's timeout, and
every SQS action of the function's role is on the shard queue's ARN alone (but for sqs:SendMessage on
the failed-invocation queue). Also what narrows who can
do what (docs/security.md): the shard queue's policy denies sqs:SendMessage to every principal but the
function's role (and anything without TLS) while leaving the role's receive/delete and the account's
administration alone; asynchronous invocations are not retried by Lambda and fail into a queue of their
own; the dead-letter and failed-invocation queues are retained; the optional KMS key and organization
id add exactly their grant and condition. ScheduleState (ENABLED or DISABLED, as cfn-lint's schema of the
schedule's State has them) is the schedule's State, half the cases each.

Operations, checked against what src/ writes and reads rather than against names copied here: every
alarm notifies AlarmTopicArn and the AlarmEmail topic, each exactly when set (all four combinations,
with FanOut false and true); the function logs JSON to RegistryLogGroup, whose retention is
LogRetentionDays (allowed: exactly the values of cfn-lint's schema of RetentionInDays); the dashboard
body is JSON once substituted and names only metrics src/metrics.rs emits, with its dimension set and
the function's name, the dead-letter queue's depth exactly with FanOut; the saved Logs Insights queries
are on that log group and name only messages, fields and span fields of the tracing events and spans
in src/ (at the depths their spans have); the function declares every variable src/ reads but those
Lambda reserves and those an empty value would not leave unset.

Then source-account.yaml, the reader role of every source account: cfn-lint, and, for every
combination of its switches, that the role is allowed exactly the actions the code can use
(READER_ACTIONS below, cross-checked against the operations named in src/aws/*.rs), and that
describing, fetching and cancelling statements is limited to the statements of the caller's own role
session (redshift-data:statement-owner-iam-userid equal to ${aws:userid})."""
import itertools
import json
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

from cfnlint.api import ManualArgs
from cfnlint.api import lint as cfn_lint
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

root = Path(__file__).resolve().parent.parent
template_path = root / "template.yaml"

source_path = root / "source-account.yaml"



def lint(path, ignore=()):
    """cfn-lint in this process (its rules and schemas load once, not once per case): errors and warnings fail."""
    matches = cfn_lint(path.read_text(), config=ManualArgs(regions=["us-east-1"], ignore_checks=list(ignore)))
    if matches:
        sys.exit(f"cfn-lint failed on {path.name}:\n" + "\n".join(str(m) for m in matches))


# cfn-lint evaluates every combination of the conditions; each case below is linted again as
# CloudFormation receives it.
for path in (template_path, source_path):
    lint(path)


class NoManagedPolicies:
    """The template names no managed policies; a lookup would need AWS, so refuse it."""

    def load(self):
        raise SystemExit("the template must not depend on AWS managed policies")


NO_VALUE = object()


def value(node, values):
    if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in values:
        return values[node["Ref"]]
    return node


def holds(expr, values, conditions):
    (fn, args), = expr.items()
    if fn == "Fn::Equals":
        return value(args[0], values) == value(args[1], values)
    if fn == "Fn::Not":
        return not holds(args[0], values, conditions)
    if fn == "Fn::And":
        return all(holds(a, values, conditions) for a in args)
    if fn == "Fn::Or":
        return any(holds(a, values, conditions) for a in args)
    if fn == "Condition":
        return conditions[args]
    raise SystemExit(f"check-template.py cannot evaluate {fn} in a condition")


def resolve(node, conditions):
    """The template as CloudFormation sees it under these conditions: Fn::If taken, NoValue gone."""
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] == "AWS::NoValue":
            return NO_VALUE
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return resolve(yes if conditions[name] else no, conditions)
        out = {k: resolve(v, conditions) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}
    if isinstance(node, list):
        return [v for v in (resolve(x, conditions) for x in node) if v is not NO_VALUE]
    return node


def as_list(x):
    return x if isinstance(x, list) else [x]


def as_cloudformation(out, conditions):
    """A transformed template as CloudFormation deploys it under these conditions: resources and
    outputs whose Condition is false left out, every Fn::If taken, no Conditions left."""
    plain = {k: v for k, v in out.items() if k != "Conditions"}
    for section in ("Resources", "Outputs"):
        plain[section] = {
            name: {k: v for k, v in body.items() if k != "Condition"}
            for name, body in out.get(section, {}).items()
            if conditions.get(body.get("Condition"), True)
        }
    return resolve(plain, conditions)


errors = []

# The transform resolves pseudo parameters such as AWS::Region; any region will do offline.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# Each Translator, when collected, warns that its metrics were never published: nothing to publish offline.
logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)
main_params = yaml_parse(template_path.read_text())["Parameters"]
sqs_event = json.loads((root / "events/sqs.json").read_text())
FAN_OUT_RESOURCES = {
    "ShardQueue": "AWS::SQS::Queue",
    "ShardDeadLetterQueue": "AWS::SQS::Queue",
    "ShardEventSourceMapping": "AWS::Lambda::EventSourceMapping",
    "DeadLetterQueueDepthAlarm": "AWS::CloudWatch::Alarm",
    "ShardQueuePolicy": "AWS::SQS::QueuePolicy",
}
# In every case: where Lambda sends the asynchronous invocations that failed.
ALWAYS_QUEUES = {"FailedInvocationsQueue": "AWS::SQS::Queue"}
QUEUE_ARN = {"Fn::GetAtt": ["ShardQueue", "Arn"]}
FAILED_QUEUE_ARN = {"Fn::GetAtt": ["FailedInvocationsQueue", "Arn"]}
ROLE_ARN = {"Fn::GetAtt": ["RegistryFunctionRole", "Arn"]}
ORG_ROLE = "arn:aws:iam::999999999999:role/registry-organizations-reader"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ORG_ID = "o-a1b2c3d4e5"
ALARM_EMAIL = "data-platform-oncall@example.com"
# The two optional narrowings (OutputBucketKmsKeyArn, ReaderOrganizationId) are set or left empty together:
# each adds one statement or condition of its own, and cfn-lint already sees every combination.
# AlarmEmail is set when exactly one of OrganizationRoleArn and the narrowings is: every combination of
# AlarmTopicArn and AlarmEmail then comes with FanOut false and true, in the same 16 cases.
# ScheduleState is DISABLED when AlarmTopicArn is set: both values, with FanOut false and true, no extra case.
main_cases = [
    (fan_out, org_role, topic, narrowing, ALARM_EMAIL if bool(org_role) != bool(narrowing[0]) else "")
    for fan_out, org_role, topic, narrowing in itertools.product(
        ["false", "true"], ["", ORG_ROLE], ["", "arn:aws:sns:us-east-1:123456789012:registry"], [("", ""), (KMS_KEY, ORG_ID)]
    )
]
# --- operations: what the code writes, parsed from src/ ------------------------------------------
# The alarms' notifications, the log group, the dashboard, the saved queries and the declared
# environment are checked against the code rather than against names copied here: the metric names
# and dimension sets of src/metrics.rs, the fields and messages of the tracing events and spans in
# src/, and the variables src/ reads.
# Unit-test modules (`#[cfg(test)] mod tests`, at the end of a file) left out: what they read or log
# is not the function's.
SRC = {
    p.relative_to(root).as_posix(): re.split(r"\n#\[cfg\(test\)\]\s*\nmod \w+", p.read_text())[0]
    for p in sorted((root / "src").rglob("*.rs"))
}
METRICS_RS = SRC.get("src/metrics.rs", "")
STR_CONSTS = {}
for text in SRC.values():
    STR_CONSTS.update(re.findall(r'\bconst\s+([A-Z][A-Z0-9_]*)\s*:\s*&str\s*=\s*"([^"]*)"\s*;', text))


def emitted_metrics():
    """The metric names src/metrics.rs writes: metrics()'s flag/count entries, the named Metric
    literals (Duration) and the ones named by a constant (RefusedMessages)."""
    names = set(re.findall(r'\b(?:flag|count)\(\s*"([A-Za-z0-9]+)"', METRICS_RS))
    names |= set(re.findall(r'\bMetric\s*\{\s*name:\s*"([A-Za-z0-9]+)"', METRICS_RS))
    names |= {STR_CONSTS.get(c, c) for c in re.findall(r'\bMetric\s*\{\s*name:\s*([A-Z][A-Z0-9_]*)\b', METRICS_RS)}
    return names


def emitted_dimension_sets():
    """The EMF document's CloudWatchMetrics Dimensions (a list of dimension sets)."""
    found = re.findall(r'"Dimensions"\s*:\s*(\[\s*\[[^\]]*\](?:\s*,\s*\[[^\]]*\])*\s*\])', METRICS_RS)
    return [json.loads(f) for f in found]


def macro_calls(text, names):
    """The argument lists of the macros `names` (name!(...)) in Rust source, parentheses and string
    literals respected."""
    for m in re.finditer(r"\b(?:tracing::)?(" + "|".join(names) + r")!\(", text):
        i, depth, args, cur, in_str = m.end(), 1, [], "", False
        while i < len(text) and depth:
            c = text[i]
            if in_str:
                cur += c
                if c == "\\":
                    cur += text[i + 1]
                    i += 1
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str, cur = True, cur + c
            elif c in "([{":
                depth, cur = depth + 1, cur + c
            elif c in ")]}":
                depth -= 1
                if depth:
                    cur += c
            elif c == "," and depth == 1:
                args.append(cur.strip())
                cur = ""
            else:
                cur += c
            i += 1
        if cur.strip():
            args.append(cur.strip())
        yield m.group(1), args


def field_of(arg):
    """The field an argument of a tracing macro records, and how (`%` Display, `?` Debug, `` value)."""
    m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([%?]?)(.*)", arg, re.S)
    if m:
        return m.group(1), m.group(2)
    m = re.fullmatch(r"([%?]?)([A-Za-z_][A-Za-z0-9_.]*)", arg)
    if m:
        return m.group(2).rsplit(".", 1)[-1], m.group(1)
    return None, None


def tracing_events():
    """Every tracing event in src/: (level, message, {field: sigil}, file)."""
    events = []
    for path, text in SRC.items():
        for level, args in macro_calls(text, ["trace", "debug", "info", "warn", "error"]):
            if not args or not re.fullmatch(r'"(?:[^"\\]|\\.)*"', args[-1]):
                continue
            fields = dict(f for f in map(field_of, args[:-1]) if f[0] and f[0] != "target")
            events.append((level.upper(), json.loads(args[-1]), fields, path))
    return events


def tracing_spans():
    """Every span in src/: {span name: {field}}."""
    spans = {}
    for text in SRC.values():
        for _, args in macro_calls(text, ["info_span", "debug_span", "trace_span", "warn_span", "error_span"]):
            if args and re.fullmatch(r'"[^"]*"', args[0]):
                spans.setdefault(json.loads(args[0]), set()).update(f for f, _ in map(field_of, args[1:]) if f)
    return spans


METRIC_NAMES = emitted_metrics()
DIMENSION_SETS = emitted_dimension_sets()
EVENTS = tracing_events()
SPANS = tracing_spans()
# lambda_runtime's span around each invocation (lambda_runtime::layers::trace::request_span, outside src/):
# the root of every line's `spans`.
SPANS["Lambda runtime invoke"] = {"requestId", "xrayTraceId"}
# How the spans nest (src/run.rs: account > region > warehouse; src/read/mod.rs: database inside a
# warehouse's trip; src/shard.rs: the shard span around a shard's run): `spans.N` of a line is the
# N-th from the root, in a run and in a shard invocation.
SPAN_STACKS = [
    ["Lambda runtime invoke", "account", "region", "warehouse", "database"],
    ["Lambda runtime invoke", "shard", "account", "region", "warehouse", "database"],
]
EVENT_FIELDS = {f for _, _, fields, _ in EVENTS for f in fields}
MESSAGES = {msg for _, msg, _, _ in EVENTS}
run_status = re.search(r"pub enum RunStatus\s*\{(.*?)\}", SRC.get("src/report.rs", ""), re.S)
RUN_STATUSES = set(re.findall(r"^\s*([A-Z][A-Za-z]*),", re.sub(r"//[^\n]*", "", run_status.group(1)), re.M)) if run_status else set()
if not METRIC_NAMES or not DIMENSION_SETS or not EVENTS or not SPANS or not RUN_STATUSES:
    errors.append(
        "could not read src/: metrics, dimension sets, tracing events, spans or RunStatus not found "
        f"({len(METRIC_NAMES)}, {len(DIMENSION_SETS)}, {len(EVENTS)}, {len(SPANS)}, {len(RUN_STATUSES)})"
    )
# The queries read the JSON tracing format of src/main.rs init_tracing: event fields at the root,
# the span list under `spans`.
main_rs = SRC.get("src/main.rs", "")
for piece in (".json()", ".flatten_event(true)", ".with_span_list(true)"):
    if piece not in main_rs:
        errors.append(f"src/main.rs init_tracing no longer has {piece}: the saved queries read that JSON layout")
ENVIRONMENT_RS = SRC.get("src/environment.rs", "")
if "function: env.function_name" not in METRICS_RS or 'function_name: get("AWS_LAMBDA_FUNCTION_NAME")' not in ENVIRONMENT_RS:
    errors.append("src/metrics.rs: the Function dimension is no longer the Lambda function's name (AWS_LAMBDA_FUNCTION_NAME)")


def env_reads():
    """The variables src/ reads: every `get("…")` and `flag("…")` of src/environment.rs, the one
    module that reads the environment, each with whether the code treats an empty value as unset
    (its lookup filters blank values); and any env::var left elsewhere (None: read otherwise)."""
    reads = {}
    blank_is_unset = ".filter(|v| !v.trim().is_empty())" in ENVIRONMENT_RS
    for m in re.finditer(r'\b(?:get|flag)\("([A-Z][A-Z0-9_]*)"\)', ENVIRONMENT_RS):
        reads[m.group(1)] = blank_is_unset
    for path, text in SRC.items():
        if path == "src/environment.rs":
            continue
        for m in re.finditer(r"\benv::var(?:_os)?\(\s*\"([A-Z][A-Z0-9_]*)\"", text):
            if "#[cfg(test)]" not in text[: m.start()]:
                reads[m.group(1)] = False
    return reads


ENV_READS = env_reads()
# Read by the code but not declared on the function, and why (the template's comment says the same).
NOT_DECLARED = {
    "REGISTRY_EMF": "read only outside Lambda (src/main.rs once); under Lambda the record always goes to stdout",
    "RUST_LOG": "a filter for local runs; under Lambda the level is AWS_LAMBDA_LOG_LEVEL's",
}
RESERVED = re.compile(r"AWS_LAMBDA_.*|AWS_REGION|AWS_DEFAULT_REGION|AWS_EXECUTION_ENV|_HANDLER|LAMBDA_.*|AWS_ACCESS_KEY.*|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN")
# What each declared variable that stands for "unset" must be, and that empty must mean unset for it.
DECLARED_UNSET = {"REGISTRY_CONFIG": "", "REGISTRY_S3_FORCE_PATH_STYLE": "false"}
if not ENV_READS:
    errors.append("found no environment variable read in src/")
if "REGISTRY_S3_FORCE_PATH_STYLE" in ENV_READS and not (
    'flag("REGISTRY_S3_FORCE_PATH_STYLE")' in ENVIRONMENT_RS
    and 'v.eq_ignore_ascii_case("true") || v == "1"' in ENVIRONMENT_RS
):
    errors.append('src/environment.rs: REGISTRY_S3_FORCE_PATH_STYLE is no longer "true"/"1" only; check that "false" still means unset')


def render(node, refs, atts, where):
    """A string built from Fn::Sub / Fn::Join / Ref / Fn::GetAtt, with refs and attributes standing for
    what CloudFormation substitutes."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Ref" and arg in refs:
            return refs[arg]
        if fn == "Fn::GetAtt" and ".".join(arg) in atts:
            return atts[".".join(arg)]
        if fn == "Fn::Join":
            return arg[0].join(render(x, refs, atts, where) for x in arg[1])
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            local = {k: render(v, refs, atts, where) for k, v in variables.items()}

            def one(m):
                if m.group(1):
                    return "${" + m.group(2) + "}"
                name = m.group(2)
                if name in local:
                    return local[name]
                if name in refs:
                    return refs[name]
                if name in atts:
                    return atts[name]
                errors.append(f"{where}: ${{{name}}} is not a parameter, resource or attribute the check knows")
                return "?"

            return re.sub(r"\$\{(!?)([A-Za-z0-9_:.]+)\}", one, text)
    errors.append(f"{where}: cannot render {node!r}")
    return ""


FUNCTION_NAME = "registry-stack-RegistryFunction-AbC123"
DLQ_NAME = "registry-stack-ShardDeadLetterQueue-AbC123"
# What the dashboard must show (the list), each a metric the code emits or an AWS one.
DASHBOARD_NEEDS = {
    "runs by status": {"Runs", "RunsNotSucceeded", "RunsFailed"},
    "datasets written and removed": {"DatasetsWritten", "DatasetsRemoved"},
    "failures by scope": {"AccountsFailed", "RegionsFailed", "WarehousesFailed", "DatabasesFailed"},
    "run duration": {"Duration"},
    "refused messages": {"RefusedMessages"},
    "publish superseded": {"PublishSuperseded"},
    "Lambda errors and duration": {"AWS/Lambda:Errors", "AWS/Lambda:Duration"},
}
QUERY_WORDS = {"fields", "filter", "sort", "limit", "as", "and", "or", "not", "in", "asc", "desc", "like", "by", "stats", "display", "parse"}
QUERY_FUNCTIONS = {"coalesce", "ispresent", "isempty", "isblank", "concat", "count", "strlen"}


def check_operations(case, cfn, res, values, fan_out, topic, email):
    """The alarms' actions, the log group, the dashboard, the saved queries and the environment in
    one case's template as CloudFormation gets it."""
    # Alarms: AlarmTopicArn and the AlarmEmail topic, each when set; no actions when neither is.
    expected_actions = ([{"Ref": "AlarmTopicArn"}] if topic else []) + ([{"Ref": "AlarmEmailTopic"}] if email else [])
    alarms = {n: r["Properties"] for n, r in res.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    if len(alarms) != (3 if fan_out == "true" else 2):
        errors.append(f"[{case}] expected the 2 alarms (and the dead-letter one with FanOut), found {sorted(alarms)}")
    for name, alarm in alarms.items():
        if alarm.get("AlarmActions", []) != expected_actions:
            errors.append(f"[{case}] {name}'s AlarmActions are {alarm.get('AlarmActions')}, expected {expected_actions or 'none'}")
        for other in ("OKActions", "InsufficientDataActions"):
            if other in alarm and alarm[other] != expected_actions:
                errors.append(f"[{case}] {name}'s {other} must notify what its AlarmActions notify")
    sns = {n: r for n, r in res.items() if r["Type"].startswith("AWS::SNS::")}
    expected_sns = {"AlarmEmailTopic": "AWS::SNS::Topic", "AlarmEmailSubscription": "AWS::SNS::Subscription"} if email else {}
    if {n: r["Type"] for n, r in sns.items()} != expected_sns:
        errors.append(f"[{case}] SNS resources are {sorted(sns)}, expected {sorted(expected_sns)}")
    elif email:
        sub = sns["AlarmEmailSubscription"]["Properties"]
        if sub != {"TopicArn": {"Ref": "AlarmEmailTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}:
            errors.append(f"[{case}] AlarmEmailSubscription must subscribe AlarmEmail by email to AlarmEmailTopic: {sub}")
    outputs = cfn.get("Outputs", {})
    if ("AlarmEmailTopicArn" in outputs) != bool(email) or (email and outputs["AlarmEmailTopicArn"]["Value"] != {"Ref": "AlarmEmailTopic"}):
        errors.append(f"[{case}] output AlarmEmailTopicArn must be the AlarmEmail topic, exactly when AlarmEmail is set")

    # The log group: the function writes to it (LoggingConfig.LogGroup), in JSON, kept LogRetentionDays.
    groups = {n: r for n, r in res.items() if r["Type"] == "AWS::Logs::LogGroup"}
    fn = res["RegistryFunction"]["Properties"]
    logging_config = fn.get("LoggingConfig", {})
    if list(groups) != ["RegistryLogGroup"]:
        errors.append(f"[{case}] expected one log group, RegistryLogGroup: {sorted(groups)}")
    else:
        group = groups["RegistryLogGroup"]
        if group["Properties"].get("RetentionInDays") != {"Ref": "LogRetentionDays"}:
            errors.append(f"[{case}] RegistryLogGroup's RetentionInDays must be the LogRetentionDays parameter")
        if "DeletionPolicy" not in group or "UpdateReplacePolicy" not in group:
            errors.append(f"[{case}] RegistryLogGroup must say its DeletionPolicy and UpdateReplacePolicy")
        if "LogGroupName" in group["Properties"] and group.get("DeletionPolicy") == "Retain":
            errors.append(f"[{case}] a retained log group with a fixed name would block a new stack of the same name")
    if logging_config.get("LogGroup") != {"Ref": "RegistryLogGroup"} or logging_config.get("LogFormat") != "JSON":
        errors.append(f"[{case}] the function must log JSON to RegistryLogGroup (LoggingConfig LogFormat JSON, LogGroup): {logging_config}")
    if outputs.get("LogGroupName", {}).get("Value") != {"Ref": "RegistryLogGroup"}:
        errors.append(f"[{case}] output LogGroupName must be RegistryLogGroup")

    check_dashboard(case, cfn, res, values, fan_out)

    # Saved queries: on the function's log group, reading fields and messages the code writes.
    queries = {n: r["Properties"] for n, r in res.items() if r["Type"] == "AWS::Logs::QueryDefinition"}
    if sorted(queries) != ["RefusedMessagesQuery", "RunFailuresQuery", "RunNotesQuery"]:
        errors.append(f"[{case}] saved queries are {sorted(queries)}, expected RunFailuresQuery, RunNotesQuery, RefusedMessagesQuery")
    for qname, q in queries.items():
        check_query(f"[{case}] {qname}", q)

    # The environment: every variable the code reads, declared but those that must not be.
    env = fn["Environment"]["Variables"]
    for var, empty_is_unset in sorted(ENV_READS.items()):
        if var in NOT_DECLARED or RESERVED.fullmatch(var):
            if var in env:
                errors.append(f"[{case}] {var} must not be declared on the function ({NOT_DECLARED.get(var, 'reserved by Lambda')})")
        elif var not in env:
            errors.append(f"[{case}] src/ reads {var}: declare it in the function's Environment.Variables (sam local invoke --env-vars)")
        elif env[var] == "" and not empty_is_unset:
            errors.append(f"[{case}] {var} is declared empty, but src/ does not treat an empty {var} as unset")
    for var in env:
        if var not in ENV_READS:
            errors.append(f"[{case}] the function declares {var}, which src/ does not read")
    for var, unset in DECLARED_UNSET.items():
        if env.get(var) != unset:
            errors.append(f"[{case}] {var} must be declared {unset!r} (unset) by default: {env.get(var)!r}")
        elif unset == "" and not ENV_READS.get(var):
            errors.append(f"[{case}] {var} is declared empty, but src/ does not treat an empty {var} as unset")
    if env.get("REGISTRY_METRICS_NAMESPACE") != {"Ref": "MetricsNamespace"} or 'metrics_namespace: get("REGISTRY_METRICS_NAMESPACE")' not in ENVIRONMENT_RS:
        errors.append(f"[{case}] REGISTRY_METRICS_NAMESPACE (src/environment.rs) must be the MetricsNamespace parameter")


def check_dashboard(case, cfn, res, values, fan_out):
    """The dashboard: JSON once substituted, naming only what src/metrics.rs emits, with its dimensions."""
    fn = res["RegistryFunction"]["Properties"]
    outputs = cfn.get("Outputs", {})
    dashboards = {n: r["Properties"] for n, r in res.items() if r["Type"] == "AWS::CloudWatch::Dashboard"}
    if list(dashboards) != ["RegistryDashboard"]:
        errors.append(f"[{case}] expected one dashboard, RegistryDashboard: {sorted(dashboards)}")
        return
    refs = {"AWS::Region": "us-east-1", "AWS::StackName": "registry-stack", "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
    refs.update({p: v for p, v in values.items()}, RegistryFunction=FUNCTION_NAME, RegistryDashboard="registry-stack-us-east-1")
    atts = {"ShardDeadLetterQueue.QueueName": DLQ_NAME} if fan_out == "true" else {}
    where = f"[{case}] RegistryDashboard"
    name = render(dashboards["RegistryDashboard"].get("DashboardName"), refs, atts, where)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", name) or "us-east-1" not in name:
        errors.append(f"{where}: DashboardName {name!r} must be letters, digits, - and _ and name the region (dashboards are global)")
    try:
        body = json.loads(render(dashboards["RegistryDashboard"].get("DashboardBody"), refs, atts, where))
    except json.JSONDecodeError as e:
        errors.append(f"{where}: DashboardBody is not JSON once substituted: {e}")
        return
    shown, grid = set(), set()
    for w in body.get("widgets", []):
        props = w.get("properties", {})
        title = props.get("title", "?")
        cells = {(x, y) for x in range(w.get("x", 0), w.get("x", 0) + w.get("width", 6)) for y in range(w.get("y", 0), w.get("y", 0) + w.get("height", 6))}
        if w.get("x", 0) + w.get("width", 6) > 24 or cells & grid:
            errors.append(f"{where}: widget {title!r} is off the 24-column grid or overlaps another")
        grid |= cells
        if w.get("type") != "metric":
            continue
        if props.get("region") != "us-east-1":
            errors.append(f"{where}: widget {title!r} must be in the stack's region (${{AWS::Region}})")
        ids = set()
        for row in props.get("metrics", []):
            opts = row[-1] if row and isinstance(row[-1], dict) else {}
            ids.add(opts.get("id"))
            if "expression" in opts:
                continue
            spec = row[:-1] if opts else row
            if len(spec) < 2 or len(spec) % 2 or "." in spec or ".." in spec:
                errors.append(f"{where}: widget {title!r}: write each metric out as [namespace, name, dimension, value, ...]: {row}")
                continue
            namespace, metric, dims = spec[0], spec[1], dict(zip(spec[2::2], spec[3::2]))
            if namespace == values["MetricsNamespace"]:
                if metric not in METRIC_NAMES:
                    errors.append(f"{where}: widget {title!r} names {metric}, which src/metrics.rs does not emit")
                if list(dims) not in [d for found in DIMENSION_SETS for d in found]:
                    errors.append(f"{where}: widget {title!r}: {metric} with dimensions {list(dims)}, src/metrics.rs emits {DIMENSION_SETS}")
                if dims.get("Function") != FUNCTION_NAME:
                    errors.append(f"{where}: widget {title!r}: {metric}'s Function must be the function's name (${{RegistryFunction}})")
                shown.add(metric)
            elif namespace == "AWS/Lambda" and dims == {"FunctionName": FUNCTION_NAME}:
                shown.add(f"AWS/Lambda:{metric}")
            elif namespace == "AWS/SQS" and dims == {"QueueName": DLQ_NAME} and metric == "ApproximateNumberOfMessagesVisible":
                shown.add("AWS/SQS:dead-letter queue")
            else:
                errors.append(f"{where}: widget {title!r}: unexpected metric {namespace} {metric} {dims}")
        for row in props.get("metrics", []):
            expression = row[-1].get("expression", "") if row and isinstance(row[-1], dict) else ""
            unknown = set(re.findall(r"\b[a-z][A-Za-z0-9_]*\b", expression)) - ids - {"FILL", "SUM", "METRICS"}
            if unknown:
                errors.append(f"{where}: widget {title!r}: expression {expression!r} names ids {sorted(unknown)} it does not define")
        for line in props.get("annotations", {}).get("horizontal", []):
            if "timeout" in line.get("label", "") and line.get("value") != fn.get("Timeout"):
                errors.append(f"{where}: the timeout line is at {line.get('value')}, the function's Timeout is {fn.get('Timeout')}")
    for what, needed in DASHBOARD_NEEDS.items():
        if not needed <= shown:
            errors.append(f"{where}: {what}: {sorted(needed - shown)} not shown")
    if ("AWS/SQS:dead-letter queue" in shown) != (fan_out == "true"):
        errors.append(f"{where}: the dead-letter queue's depth must be shown exactly when FanOut is true")
    for out_name, ref in (("DashboardName", {"Ref": "RegistryDashboard"}),):
        if outputs.get(out_name, {}).get("Value") != ref:
            errors.append(f"[{case}] output {out_name} must be {ref}")
    url = outputs.get("DashboardUrl", {}).get("Value")
    if not url or "${RegistryDashboard}" not in json.dumps(url):
        errors.append(f"[{case}] output DashboardUrl must link to RegistryDashboard")


def check_query(where, q):
    if q.get("LogGroupNames") != [{"Ref": "RegistryLogGroup"}]:
        errors.append(f"{where}: must query RegistryLogGroup alone: {q.get('LogGroupNames')}")
    if not json.dumps(q.get("Name", "")).startswith('{"Fn::Sub": "${AWS::StackName}/'):
        errors.append(f"{where}: its Name must start with the stack's name (the folder in Logs Insights)")
    text = q.get("QueryString", "")
    if "ispresent(target)" not in text:
        errors.append(f"{where}: must keep to tracing lines (ispresent(target)), not the EMF records")
    for field, literal in re.findall(r'\b(message|status|level)\s*!?=\s*"([^"]*)"', text) + [
        ("message", s) for group in re.findall(r"\bmessage\s+in\s*\[([^\]]*)\]", text) for s in re.findall(r'"([^"]*)"', group)
    ]:
        if field == "message" and literal not in MESSAGES:
            errors.append(f"{where}: no tracing event in src/ has the message {literal!r}")
        if field == "status" and literal not in RUN_STATUSES:
            errors.append(f"{where}: status {literal!r} is not a RunStatus of src/report.rs ({sorted(RUN_STATUSES)})")
        if field == "level" and literal not in {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}:
            errors.append(f"{where}: level {literal!r} is not one tracing writes")
    if re.search(r'\bstatus\s*!?=', text):
        # `status` compared with a variant name: every line the query takes it from logs it with `?` (Debug).
        for level, msg, fields, path in EVENTS:
            if "status" in fields and fields["status"] != "?":
                errors.append(f"{where}: {path} logs status of {msg!r} other than with ? (Debug), the variant name")
    code = re.sub(r'"[^"]*"', '""', text)
    aliases = set(re.findall(r"\bas\s+([A-Za-z_]\w*)", code))
    for m in re.finditer(r"(?<![@\w.])([A-Za-z_]\w*(?:\.\w+)*)(\s*\()?", code):
        token, call = m.group(1), m.group(2)
        if token in QUERY_WORDS or token in aliases:
            continue
        if call:
            if token not in QUERY_FUNCTIONS:
                errors.append(f"{where}: check-template.py does not know the function {token}()")
            continue
        parts = token.split(".")
        if parts[0] == "spans" and len(parts) == 3 and parts[1].isdigit():
            depth, field = int(parts[1]), parts[2]
            at = [s[depth] for s in SPAN_STACKS if depth < len(s)]
            if not any(field in SPANS.get(span, set()) for span in at):
                errors.append(f"{where}: {token}: no span at depth {depth} ({at}) records {field}")
        elif token in {"level", "message", "target"}:
            continue
        elif token not in EVENT_FIELDS:
            errors.append(f"{where}: {token} is not a field of any tracing event in src/")
    # A span field read at one depth must be read at every depth its span has (run and shard lines).
    for args in re.findall(r"coalesce\(([^)]*)\)", code):
        refs = [a.strip().split(".") for a in args.split(",")]
        fields = {r[2] for r in refs if len(r) == 3 and r[0] == "spans"}
        for field in fields:
            depths = {s.index(span) for s in SPAN_STACKS for span in s if field in SPANS.get(span, set())}
            if {int(r[1]) for r in refs if r[2:] == [field]} != depths:
                errors.append(f"{where}: coalesce of {field} must read it at every depth its span has: {sorted(depths)}")
    for depth, field in re.findall(r"\bspans\.(\d+)\.(\w+)", re.sub(r"coalesce\([^)]*\)", "", code)):
        if field != "requestId":
            errors.append(f"{where}: spans.{depth}.{field} outside a coalesce: its depth differs between runs and shards")



for fan_out, org_role, topic, (kms_key, org_id), email in main_cases:
    case = (
        f"FanOut={fan_out}, OrganizationRoleArn={'set' if org_role else 'empty'}, AlarmTopicArn={'set' if topic else 'empty'}, "
        f"AlarmEmail={'set' if email else 'empty'}, OutputBucketKmsKeyArn and ReaderOrganizationId {'set' if kms_key else 'empty'}, "
        f"ScheduleState={'DISABLED' if topic else 'ENABLED'}"
    )
    given = {
        "OutputBucket": "registry-bucket",
        "FanOut": fan_out,
        "OrganizationRoleArn": org_role,
        "AlarmTopicArn": topic,
        "OutputBucketKmsKeyArn": kms_key,
        "ReaderOrganizationId": org_id,
        "AlarmEmail": email,
        "ScheduleState": "DISABLED" if topic else "ENABLED",
    }
    values = {p: str(spec["Default"]) for p, spec in main_params.items() if "Default" in spec}
    values.update(given)
    template = yaml_parse(template_path.read_text())
    # Like `sam validate`: local CodeUri paths stand for the artifact `sam package` uploads.
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://artifacts/redshift-registry.zip"
    out = transform(template, dict(given), NoManagedPolicies())
    conditions = {}
    for name, expr in out.get("Conditions", {}).items():
        conditions[name] = holds(expr, values, conditions)
    cfn = as_cloudformation(out, conditions)
    for name, v in given.items():  # what this case's stack is given, as cfn-lint resolves a Ref
        cfn["Parameters"][name]["Default"] = v
    res = cfn["Resources"]

    # cfn-lint on the template CloudFormation gets in this case (the parameters these conditions
    # stand for are then unused: W2001 is expected).
    with tempfile.TemporaryDirectory() as tmp:
        resolved_path = (
            Path(tmp)
            / f"template-fanout-{fan_out}{'-org' if org_role else ''}{'-topic' if topic else ''}{'-email' if email else ''}{'-kms' if kms_key else ''}.json"
        )
        resolved_path.write_text(json.dumps(cfn, indent=1))
        lint(resolved_path, ["W2001"])
    check_operations(case, cfn, res, values, fan_out, topic, email)

    fn_resource = res["RegistryFunction"]["Properties"]
    if fn_resource.get("Runtime") != "provided.al2023" or fn_resource.get("Architectures") != ["arm64"]:
        errors.append(f"[{case}] the function must be provided.al2023 on arm64")
    env = fn_resource["Environment"]["Variables"]
    for var in ["REGISTRY_CONFIG_URI", "REGISTRY_OUTPUT_BUCKET", "REGISTRY_OUTPUT_PREFIX", "REGISTRY_ROLE_NAME"]:
        if var not in env:
            errors.append(f"[{case}] environment variable {var} missing")
    # Empty when off: the code treats an empty REGISTRY_QUEUE_URL as unset.
    expected_url = {"Ref": "ShardQueue"} if fan_out == "true" else ""
    if env.get("REGISTRY_QUEUE_URL") != expected_url:
        errors.append(f"[{case}] REGISTRY_QUEUE_URL is {env.get('REGISTRY_QUEUE_URL')!r}, expected {expected_url!r}")
    if env.get("REGISTRY_MAX_RECEIVE_COUNT") != {"Ref": "MaxReceiveCount"}:
        errors.append(f"[{case}] REGISTRY_MAX_RECEIVE_COUNT must be the MaxReceiveCount parameter")

    schedules = [r for r in res.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    if len(schedules) != 1:
        errors.append(f"[{case}] expected one EventBridge Scheduler schedule")
    else:
        payload = json.loads(schedules[0]["Properties"]["Target"]["Input"])
        if payload.get("source") != "aws.events" or payload.get("detail-type") != "Scheduled Event":
            errors.append(f"[{case}] the schedule's payload is not a scheduled event: {payload}")
        scheduled = json.loads((root / "events/scheduled.json").read_text())
        if {k: scheduled[k] for k in ("source", "detail-type")} != {k: payload[k] for k in ("source", "detail-type")}:
            errors.append("events/scheduled.json and the schedule's payload disagree")
        # The schedule starts runs exactly when ScheduleState says (README: deploy DISABLED, enable at the end).
        state = schedules[0]["Properties"].get("State")
        if state != {"Ref": "ScheduleState"} or value(state, values) != given["ScheduleState"]:
            errors.append(f"[{case}] the schedule's State must be the ScheduleState parameter: {state!r}")

    # --- fan-out: the queue, its dead-letter queue, the event source mapping, the alarm -------
    fan_out_types = {"AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "AWS::Lambda::EventSourceMapping"}
    present = {
        name: r["Type"]
        for name, r in res.items()
        if (r["Type"] in fan_out_types or name in FAN_OUT_RESOURCES) and name not in ALWAYS_QUEUES
    }
    expected_present = FAN_OUT_RESOURCES if fan_out == "true" else {}
    if present != expected_present:
        errors.append(f"[{case}] fan-out resources are {present}, expected {expected_present}")
    outputs = set(cfn.get("Outputs", {}))
    for name in ("QueueUrl", "DeadLetterQueueUrl"):
        if (name in outputs) != (fan_out == "true"):
            errors.append(f"[{case}] output {name} must exist exactly when FanOut is true")
    if fan_out == "true" and present == expected_present:
        timeout = fn_resource["Timeout"]
        queue = res["ShardQueue"]["Properties"]
        dlq = res["ShardDeadLetterQueue"]["Properties"]
        # Lambda developer guide, services-sqs-configure.html: at least six times the function timeout.
        if queue.get("VisibilityTimeout", 30) < 6 * timeout:
            errors.append(f"[{case}] the queue's visibility timeout {queue.get('VisibilityTimeout')} s is under 6 x {timeout} s")
        if queue.get("RedrivePolicy") != {
            "deadLetterTargetArn": {"Fn::GetAtt": ["ShardDeadLetterQueue", "Arn"]},
            "maxReceiveCount": {"Ref": "MaxReceiveCount"},
        }:
            errors.append(f"[{case}] the queue must redrive to ShardDeadLetterQueue after MaxReceiveCount receives")
        # Every attempt, 1 visibility timeout apart, must fit in the retention; a message's age in
        # the dead-letter queue counts from its first enqueue, so that queue must keep it longer.
        retention, dlq_retention = queue.get("MessageRetentionPeriod", 345600), dlq.get("MessageRetentionPeriod", 345600)
        if retention <= main_params["MaxReceiveCount"]["MaxValue"] * queue.get("VisibilityTimeout", 30):
            errors.append(f"[{case}] the queue's retention {retention} s does not hold MaxReceiveCount attempts")
        if dlq_retention <= retention:
            errors.append(f"[{case}] the dead-letter queue must keep messages longer than the queue ({dlq_retention} <= {retention})")
        esm = res["ShardEventSourceMapping"]["Properties"]
        if esm.get("EventSourceArn") != QUEUE_ARN or esm.get("FunctionName") != {"Ref": "RegistryFunction"}:
            errors.append(f"[{case}] the event source mapping must connect ShardQueue to RegistryFunction")
        if esm.get("BatchSize") != 1:
            errors.append(f"[{case}] the event source mapping's BatchSize must be 1 (one shard per invocation)")
        if esm.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
            errors.append(f"[{case}] the event source mapping must have FunctionResponseTypes [ReportBatchItemFailures]")
        if esm.get("ScalingConfig") != {"MaximumConcurrency": {"Ref": "MaxConcurrency"}}:
            errors.append(f"[{case}] ScalingConfig.MaximumConcurrency must be the MaxConcurrency parameter")
        alarm = res["DeadLetterQueueDepthAlarm"]["Properties"]
        if (
            alarm.get("Namespace") != "AWS/SQS"
            or alarm.get("MetricName") != "ApproximateNumberOfMessagesVisible"
            or alarm.get("Dimensions") != [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["ShardDeadLetterQueue", "QueueName"]}}]
            or alarm.get("ComparisonOperator") != "GreaterThanThreshold"
            or alarm.get("Threshold") != 0
        ):
            errors.append(f"[{case}] DeadLetterQueueDepthAlarm must alarm on the dead-letter queue's visible messages > 0")
        if alarm.get("AlarmActions") != res["RunsNotSucceededAlarm"]["Properties"].get("AlarmActions"):
            errors.append(f"[{case}] DeadLetterQueueDepthAlarm must notify what RunsNotSucceededAlarm notifies")
        # The shard queue's policy, evaluated for the requests that matter (the Allow statements grant
        # nothing the role does not already have; what counts is which Deny applies to whom).
        policy = res["ShardQueuePolicy"]["Properties"]
        if policy.get("Queues") != [{"Ref": "ShardQueue"}]:
            errors.append(f"[{case}] ShardQueuePolicy must apply to ShardQueue alone")
        queue_statements = policy.get("PolicyDocument", {}).get("Statement", [])

        def denied(action, principal, secure):
            """Whether a Deny of the shard queue's policy applies to this request."""
            for st in queue_statements:
                if st.get("Effect") != "Deny" or st.get("Principal") != "*" or "NotAction" in st or "NotPrincipal" in st:
                    continue
                if not any(a in (action, "sqs:*") for a in as_list(st.get("Action"))):
                    continue
                holds_all = True
                for op, pairs in st.get("Condition", {}).items():
                    for key, expected in pairs.items():
                        if (op, key) == ("ArnNotEquals", "aws:PrincipalArn"):
                            holds_all &= principal != expected
                        elif (op, key) == ("Bool", "aws:SecureTransport"):
                            holds_all &= str(secure).lower() == str(expected).lower()
                        else:
                            errors.append(f"[{case}] ShardQueuePolicy: check-template.py cannot evaluate {op} {key}")
                if holds_all:
                    return True
            return False

        for st in queue_statements:
            if st.get("Resource") != QUEUE_ARN:
                errors.append(f"[{case}] ShardQueuePolicy statement {st.get('Sid')} must be on the shard queue's ARN")
            if st.get("Effect") == "Allow" and (
                st.get("Principal") != {"AWS": ROLE_ARN} or as_list(st.get("Action")) != ["sqs:SendMessage"] or "Condition" in st
            ):
                errors.append(f"[{case}] ShardQueuePolicy may allow sqs:SendMessage to the function's role alone: {st}")
        if not any(st.get("Effect") == "Allow" for st in queue_statements):
            errors.append(f"[{case}] ShardQueuePolicy must allow the function's role sqs:SendMessage")
        someone_else = "arn:aws:iam::123456789012:role/attacker"
        admin = "arn:aws:iam::123456789012:role/Admin"
        for action in ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]:
            if denied(action, ROLE_ARN, True):
                errors.append(f"[{case}] ShardQueuePolicy denies the function's role (the planner and the event source mapping) {action}")
        if not denied("sqs:SendMessage", someone_else, True):
            errors.append(f"[{case}] ShardQueuePolicy must deny sqs:SendMessage to every principal but the function's role")
        for action in ["sqs:ReceiveMessage", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:PurgeQueue"]:
            if denied(action, admin, True):
                errors.append(f"[{case}] ShardQueuePolicy must deny only sqs:SendMessage, not {action}, to the account's administrators")
        if not (denied("sqs:SendMessage", ROLE_ARN, False) and denied("sqs:ReceiveMessage", ROLE_ARN, False)):
            errors.append(f"[{case}] ShardQueuePolicy must deny every request without TLS (aws:SecureTransport false)")

    # Messages are evidence: kept when the stack is deleted, FanOut is turned off or an update replaces the queue.
    for name, kind in {**ALWAYS_QUEUES, **({"ShardDeadLetterQueue": "AWS::SQS::Queue"} if fan_out == "true" else {})}.items():
        queue = res.get(name, {})
        if queue.get("Type") != kind:
            errors.append(f"[{case}] {name} ({kind}) is missing")
        elif (queue.get("DeletionPolicy"), queue.get("UpdateReplacePolicy")) != ("Retain", "Retain"):
            errors.append(f"[{case}] {name} must have DeletionPolicy and UpdateReplacePolicy Retain")

    # Asynchronous invocations (the schedule) are not retried by Lambda, and land in FailedInvocationsQueue.
    invoke_configs = [r["Properties"] for r in res.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    if len(invoke_configs) != 1 or (
        invoke_configs[0].get("FunctionName"),
        invoke_configs[0].get("Qualifier"),
        invoke_configs[0].get("MaximumRetryAttempts"),
        invoke_configs[0].get("DestinationConfig"),
    ) != ({"Ref": "RegistryFunction"}, "$LATEST", 0, {"OnFailure": {"Destination": FAILED_QUEUE_ARN}}):
        errors.append(
            f"[{case}] RegistryFunction needs one EventInvokeConfig with MaximumRetryAttempts 0 and OnFailure "
            f"FailedInvocationsQueue: {invoke_configs}"
        )
    if "FailedInvocationsQueueUrl" not in cfn.get("Outputs", {}):
        errors.append(f"[{case}] output FailedInvocationsQueueUrl missing")

    for name, spec, low, high in [("MaxConcurrency", 10, 2, 1000), ("MaxReceiveCount", 3, 1, 10)]:
        p = main_params.get(name, {})
        if (p.get("Type"), p.get("Default"), p.get("MinValue"), p.get("MaxValue")) != ("Number", spec, low, high):
            errors.append(f"parameter {name} must be a Number, default {spec}, {low}-{high}")
    if main_params.get("FanOut", {}).get("AllowedValues") != ["true", "false"] or main_params["FanOut"].get("Default") != "false":
        errors.append('parameter FanOut must allow "true" and "false", default "false"')

    # --- the function's role: exactly what the code calls, each on its resource ---------------
    role = res["RegistryFunctionRole"]["Properties"]
    statements = [st for p in role.get("Policies", []) for st in p["PolicyDocument"]["Statement"]]
    actions = sorted(a for st in statements for a in as_list(st["Action"]))
    # sqs:SendMessage on FailedInvocationsQueue: the on-failure destination (SAM adds it from EventInvokeConfig).
    allowed = ["s3:DeleteObject", "s3:GetObject", "s3:GetObject", "s3:ListBucket", "s3:PutObject", "sqs:SendMessage", "sts:AssumeRole"]
    if kms_key:
        allowed += ["kms:Decrypt", "kms:GenerateDataKey"]
    if fan_out == "true":
        allowed += ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"]
    if org_role:
        allowed += ["sts:AssumeRole"]
    if actions != sorted(allowed):
        errors.append(f"[{case}] the function's policy allows {actions}, expected exactly {sorted(allowed)}")
    for st in statements:
        acts = as_list(st["Action"])
        if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st:
            errors.append(f"[{case}] statement {st.get('Sid')} must be a plain Allow")
        if "*" in as_list(st.get("Resource")):
            errors.append(f"[{case}] statement {st.get('Sid')} is not scoped to a resource")
        if "s3:ListBucket" in acts and "s3:prefix" not in json.dumps(st.get("Condition", {})):
            errors.append(f"[{case}] s3:ListBucket must be limited to the output prefix")
        if any(a.startswith("sqs:") for a in acts) and st.get("Resource") != QUEUE_ARN and (acts, st.get("Resource")) != (
            ["sqs:SendMessage"],
            FAILED_QUEUE_ARN,
        ):
            errors.append(f"[{case}] statement {st.get('Sid')} grants {acts} beyond the shard queue's ARN: {st.get('Resource')}")
        if any(a.startswith("kms:") for a in acts) and (
            st.get("Resource") != {"Ref": "OutputBucketKmsKeyArn"} or sorted(acts) != ["kms:Decrypt", "kms:GenerateDataKey"]
        ):
            errors.append(f"[{case}] KMS: only kms:GenerateDataKey and kms:Decrypt, on OutputBucketKmsKeyArn alone: {st}")
        if st.get("Sid") == "AssumeReaderRoleInSourceAccounts":
            expected_condition = {"StringEquals": {"aws:ResourceOrgID": {"Ref": "ReaderOrganizationId"}}} if org_id else None
            if st.get("Condition") != expected_condition:
                errors.append(f"[{case}] AssumeReaderRoleInSourceAccounts must have the condition {expected_condition}: {st.get('Condition')}")
        if st.get("Sid") == "AssumeOrganizationRole" and st.get("Resource") != {"Ref": "OrganizationRoleArn"}:
            errors.append(f"[{case}] AssumeOrganizationRole must be on OrganizationRoleArn alone")

for name, samples in {
    "OutputBucketKmsKeyArn": [
        ("", True),
        (KMS_KEY, True),
        ("arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab", True),
        ("arn:aws:kms:us-east-1:123456789012:alias/registry", False),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", False),
    ],
    "ReaderOrganizationId": [("", True), (ORG_ID, True), ("o-" + "a" * 32, True), ("o-short", False), ("O-A1B2C3D4E5", False)],
    "AlarmEmail": [("", True), (ALARM_EMAIL, True), ("a.b+alarms@sub.example.org", True), ("oncall", False), ("a@b", False), ("a b@example.com", False)],
}.items():
    spec = main_params.get(name, {})
    if spec.get("Default") != "":
        errors.append(f"parameter {name} must default to empty (no grant, no condition)")
    for sample, ok in samples:
        if bool(re.fullmatch(spec.get("AllowedPattern", ""), sample)) != ok:
            errors.append(f"{name}'s AllowedPattern {'refuses' if ok else 'accepts'} {sample!r}")

# LogRetentionDays: exactly the values CloudWatch Logs takes for RetentionInDays (cfn-lint's resource schema).
retention = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::Logs::LogGroup").schema["properties"]["RetentionInDays"]["enum"]
spec = main_params.get("LogRetentionDays", {})
if (spec.get("Type"), spec.get("AllowedValues"), spec.get("Default")) != ("Number", retention, 30):
    errors.append(f"parameter LogRetentionDays must be a Number of {retention}, default 30: {spec}")

# ScheduleState: exactly the values the schedule's State takes (cfn-lint's resource schema), default ENABLED.
schedule_states = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::Scheduler::Schedule").schema["definitions"]["ScheduleState"]["enum"]
spec = main_params.get("ScheduleState", {})
if (spec.get("Type"), sorted(spec.get("AllowedValues", [])), spec.get("Default")) != ("String", sorted(schedule_states), "ENABLED"):
    errors.append(f"parameter ScheduleState must be a String of {schedule_states}, default ENABLED: {spec}")

# events/sqs.json: what the event source mapping delivers, one shard message as the planner writes it.
records = sqs_event.get("Records", [])
if len(records) != 1 or records[0].get("eventSource") != "aws:sqs":
    errors.append("events/sqs.json must hold one aws:sqs record")
else:
    record = records[0]
    body = json.loads(record["body"])
    # A shard message names its run and shard, nothing a visit uses (docs/security.md).
    if sorted(body) != ["apiVersion", "kind", "runId", "shardId"] or (body["apiVersion"], body["kind"]) != (
        "redshift-registry/v1",
        "Shard",
    ):
        errors.append("events/sqs.json: the body must be a redshift-registry/v1 Shard of apiVersion, kind, runId, shardId alone")
    elif not re.fullmatch(r"[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}", body["runId"]) or not re.fullmatch(
        r"[0-9]{12}-[a-z0-9-]+", body["shardId"]
    ):
        errors.append("events/sqs.json: runId must be like 20261127T070000000Z-1a2b3c4d, shardId {accountId}-{region}")
    if record.get("attributes", {}).get("ApproximateReceiveCount") != "1":
        errors.append("events/sqs.json: attributes.ApproximateReceiveCount must be \"1\"")
    # The fan-out guide (docs/fan-out.md) shows the same body.
    fan_out_doc = root / "docs/fan-out.md"
    section = fan_out_doc.read_text() if fan_out_doc.exists() else ""
    if not section.startswith("# Fan-out over SQS\n"):
        errors.append("docs/fan-out.md must be the guide \"# Fan-out over SQS\"")
    elif not any(
        json.loads(block) == body for block in re.findall(r"```json\n(.*?)```", section, re.S) if block.lstrip().startswith("{")
    ):
        errors.append("docs/fan-out.md: no JSON example equal to the body of events/sqs.json")


# --- source-account.yaml: the reader role of every source account ---------------------------
# Every action the reader role may need, what uses it, and the switch that grants it (None:
# always). "code" actions are called by src/aws/*.rs and cross-checked against it below; the
# others the Data API calls with the role's credentials, depending on how it logs in
# (Management Guide, data-api-iam.html; Data API reference, ExecuteStatement).
READER_ACTIONS = {
    "redshift:DescribeClusters": ("code", "src/aws/redshift.rs: list_clusters, find_cluster", None),
    "redshift-data:ExecuteStatement": ("code", "src/aws/data_api.rs: execute", None),
    "redshift-data:BatchExecuteStatement": ("code", "src/aws/data_api.rs: batch_execute", None),
    "redshift-data:DescribeStatement": ("code", "src/aws/data_api.rs: describe", None),
    "redshift-data:GetStatementResult": ("code", "src/aws/data_api.rs: page", None),
    "redshift-data:CancelStatement": ("code", "src/aws/data_api.rs: cancel", None),
    "redshift-serverless:ListWorkgroups": ("code", "src/aws/redshift.rs: list_workgroups", "IncludeServerless"),
    "redshift-serverless:ListNamespaces": ("code", "src/aws/redshift.rs: namespaces", "IncludeServerless"),
    "redshift-serverless:GetWorkgroup": ("code", "src/aws/redshift.rs: find_workgroup", "IncludeServerless"),
    "redshift-serverless:GetNamespace": ("code", "src/aws/redshift.rs: find_workgroup", "IncludeServerless"),
    "redshift:GetClusterCredentialsWithIAM": ("data-api", "a cluster read as the role (no dbUser, no secretArn)", None),
    "redshift-serverless:GetCredentials": ("data-api", "a workgroup read as the role (no secretArn)", "IncludeServerless"),
    "redshift:GetClusterCredentials": ("data-api", "a cluster the config names with dbUser", "AllowDbUserAuth"),
    "secretsmanager:GetSecretValue": ("data-api", "a cluster or workgroup named with secretArn", "AllowSecretsManager"),
}
# Actions that take no resource, or that list: the only ones allowed on Resource "*".
RESOURCE_STAR_OK = {
    "redshift:DescribeClusters",
    "redshift-serverless:ListWorkgroups",
    "redshift-serverless:ListNamespaces",
    "redshift-serverless:GetWorkgroup",
    "redshift-serverless:GetNamespace",
    "redshift-data:DescribeStatement",
    "redshift-data:GetStatementResult",
    "redshift-data:CancelStatement",
}

OWN_STATEMENT_ACTIONS = {"redshift-data:DescribeStatement", "redshift-data:GetStatementResult", "redshift-data:CancelStatement"}
OWNER_CONDITION = {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}

# The operations the adapters name in their errors (aws_error("service:Operation", e)) are the
# calls they make; those of the reader's services must be exactly the "code" actions above.
called = set()
for rs in sorted((root / "src/aws").glob("*.rs")):
    called |= set(re.findall(r'"((?:redshift|redshift-data|redshift-serverless):[A-Za-z]+)"', rs.read_text()))
code_actions = {a for a, (kind, _, _) in READER_ACTIONS.items() if kind == "code"}
if not called:
    errors.append("found no redshift, redshift-data or redshift-serverless operation in src/aws/*.rs")
elif called != code_actions:
    errors.append(
        f"src/aws/*.rs calls {sorted(called - code_actions)} not in READER_ACTIONS, "
        f"and READER_ACTIONS has {sorted(code_actions - called)} the code no longer calls"
    )

source = yaml_parse(source_path.read_text())
params = source.get("Parameters", {})
if "Transform" in source:
    errors.append("source-account.yaml must be plain CloudFormation (StackSets take no transforms)")
if set(params) != {"RegistryFunctionRoleArn", "ReaderRoleName", "ExternalId", "IncludeServerless", "AllowDbUserAuth", "AllowSecretsManager"}:
    errors.append(f"source-account.yaml has parameters {sorted(params)}")
if "Default" in params.get("RegistryFunctionRoleArn", {}):
    errors.append("RegistryFunctionRoleArn must have no default: it names the registry's own account")
main_role_name = yaml_parse(template_path.read_text())["Parameters"]["ReaderRoleName"]
for key in ("Default", "AllowedPattern"):
    if params.get("ReaderRoleName", {}).get(key) != main_role_name.get(key):
        errors.append(f"ReaderRoleName's {key} differs between template.yaml and source-account.yaml")
role_arn_pattern = params.get("RegistryFunctionRoleArn", {}).get("AllowedPattern", "")
for arn, ok in [
    ("arn:aws:iam::123456789012:role/stack-RegistryFunctionRole-ABC123", True),
    ("arn:aws-us-gov:iam::123456789012:role/service-role/registry", True),
    ("arn:aws-cn:iam::123456789012:role/registry", True),
    ("arn:aws:iam::12345678901:role/registry", False),
    ("arn:aws:iam::123456789012:user/registry", False),
    ("arn:aws:sts::123456789012:assumed-role/registry/session", False),
    ("", False),
]:
    if bool(re.fullmatch(role_arn_pattern, arn)) != ok:
        errors.append(f"RegistryFunctionRoleArn's AllowedPattern {'refuses' if ok else 'accepts'} {arn!r}")
ext_pattern = params.get("ExternalId", {}).get("AllowedPattern", "")
for ext, ok in [("", True), ("ab", True), ("x" * 1224, True), ("a", False), ("x" * 1225, False), ("a b", False)]:
    if bool(re.fullmatch(ext_pattern, ext)) != ok:
        errors.append(f"ExternalId's AllowedPattern {'refuses' if ok else 'accepts'} {ext[:20]!r}")

# StackSets-ready: nothing account-specific, no export that would collide between instances.
text = source_path.read_text()
if re.search(r"\b\d{12}\b", text):
    errors.append("source-account.yaml names a 12-digit account id; use ${AWS::AccountId}")
for name, out in source.get("Outputs", {}).items():
    if "Export" in out:
        errors.append(f"output {name} is exported: StackSet instances would collide")
if source.get("Outputs", {}).get("ReaderRoleArn", {}).get("Value") != {"Fn::GetAtt": ["ReaderRole", "Arn"]}:
    errors.append("output ReaderRoleArn must be the role's ARN")
if [r["Type"] for r in source["Resources"].values()] != ["AWS::IAM::Role"]:
    errors.append("source-account.yaml must hold exactly one resource, the reader role")


def subs(node):
    """Every Fn::Sub string in the tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Fn::Sub":
                yield v if isinstance(v, str) else v[0]
            else:
                yield from subs(v)
    elif isinstance(node, list):
        for v in node:
            yield from subs(v)


for s in subs(source):
    if s.startswith("arn:") and not (s.startswith("arn:${AWS::Partition}:") and ":${AWS::AccountId}:" in s):
        errors.append(f"ARN {s} must use ${{AWS::Partition}} and ${{AWS::AccountId}}")

switches = ["IncludeServerless", "AllowDbUserAuth", "AllowSecretsManager"]
combinations = list(itertools.product(["true", "false"], ["true", "false"], ["true", "false"], ["", "registry-ext-id"]))
for *flags, external_id in combinations:
    values = {p: spec.get("Default") for p, spec in params.items()}
    values.update(dict(zip(switches, flags)), ExternalId=external_id)
    values.update({"RegistryFunctionRoleArn": "arn:aws:iam::123456789012:role/registry", "AWS::Partition": "aws"})
    conditions = {}
    for name, expr in source.get("Conditions", {}).items():
        conditions[name] = holds(expr, values, conditions)
    case = ", ".join(f"{k}={values[k]!r}" for k in switches + ["ExternalId"])
    role = resolve(source["Resources"]["ReaderRole"], conditions)["Properties"]

    if role.get("RoleName") != {"Ref": "ReaderRoleName"}:
        errors.append("the role must be named by ReaderRoleName, the name the function assumes")
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    expected_condition = {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}} if external_id else None
    if (
        len(trust) != 1
        or trust[0].get("Effect") != "Allow"
        or trust[0].get("Action") != "sts:AssumeRole"
        or trust[0].get("Principal") != {"AWS": {"Ref": "RegistryFunctionRoleArn"}}
        or trust[0].get("Condition") != expected_condition
    ):
        errors.append(f"[{case}] trust policy must be sts:AssumeRole by RegistryFunctionRoleArn, with sts:ExternalId when set: {trust}")

    statements = [st for p in role.get("Policies", []) for st in p["PolicyDocument"]["Statement"]]
    granted = []
    for st in statements:
        acts = as_list(st["Action"])
        granted += acts
        if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st:
            errors.append(f"[{case}] statement {st.get('Sid')} must be a plain Allow")
        if "*" in as_list(st["Resource"]) and not set(acts) <= RESOURCE_STAR_OK:
            errors.append(f"[{case}] statement {st.get('Sid')} grants {sorted(set(acts) - RESOURCE_STAR_OK)} on *")
        # Describe, fetch and cancel only the statements of this role session (source-account.yaml cites
        # the Service Authorization Reference and the Management Guide).
        if set(acts) & OWN_STATEMENT_ACTIONS and (set(acts) != OWN_STATEMENT_ACTIONS or st.get("Condition") != OWNER_CONDITION):
            errors.append(f"[{case}] {sorted(OWN_STATEMENT_ACTIONS)} belong in one statement with the condition {OWNER_CONDITION}")
        if "statement-owner-iam-userid" in json.dumps(st.get("Condition", {})) and not set(acts) <= OWN_STATEMENT_ACTIONS:
            errors.append(f"[{case}] statement {st.get('Sid')}: the statement-owner condition does not apply to {acts}")
        if "redshift-data:ExecuteStatement" in acts:
            workgroups = any(":workgroup/" in json.dumps(r) for r in as_list(st["Resource"]))
            if workgroups != (values["IncludeServerless"] == "true"):
                errors.append(f"[{case}] ExecuteStatement on workgroups must follow IncludeServerless")
    expected = sorted(a for a, (_, _, switch) in READER_ACTIONS.items() if switch is None or values[switch] == "true")
    if sorted(granted) != expected:
        extra, lacking = sorted(set(granted) - set(expected)), sorted(set(expected) - set(granted))
        twice = sorted({a for a in granted if granted.count(a) > 1})
        errors.append(f"[{case}] the reader role allows {extra} beyond the code's needs, lacks {lacking}, repeats {twice}")

# The permissions guide (docs/permissions.md) describes the role from the template,
# not a second copy: every action in its table.
permissions_doc = root / "docs/permissions.md"
readme = permissions_doc.read_text() if permissions_doc.exists() else ""
missing = [a for a in READER_ACTIONS if f"`{a}`" not in readme]
if "source-account.yaml" not in readme or missing:
    errors.append(f"docs/permissions.md must point to source-account.yaml and name every action it grants; missing {missing}")

if errors:
    sys.exit("template check failed:\n- " + "\n- ".join(errors))
print(
    f"template: cfn-lint clean, and again as CloudFormation gets it in all {len(main_cases)} cases (FanOut, "
    "OrganizationRoleArn, AlarmTopicArn, AlarmEmail, OutputBucketKmsKeyArn with ReaderOrganizationId, ScheduleState); SAM transform ok; schedule "
    "payload and State (ScheduleState), runtime and IAM scope as expected; queue, queue policy, dead-letter queue, event source mapping "
    "(BatchSize 1, ReportBatchItemFailures, MaxConcurrency) and alarm only with FanOut=true, visibility timeout >= 6x "
    "the function's, SQS actions on the queue's ARN alone (and SendMessage on FailedInvocationsQueue); the queue policy denies sqs:SendMessage to all but the "
    "function's role and anything without TLS, and nothing else to the role or the administrators; asynchronous "
    "invocations: MaximumRetryAttempts 0, OnFailure FailedInvocationsQueue; dead-letter and failed-invocation queues "
    "retained; KMS grant and aws:ResourceOrgID condition exactly when set; events/sqs.json and docs/fan-out.md's message "
    "body agree"
)
print(
    f"operations: alarm actions per AlarmTopicArn/AlarmEmail; log group (LogRetentionDays, the function's LoggingConfig); "
    f"dashboard JSON, its metrics among the {len(METRIC_NAMES)} src/metrics.rs emits, dimensions {DIMENSION_SETS[0] if DIMENSION_SETS else []}; "
    f"3 saved queries on the log group naming only messages and fields of the {len(EVENTS)} tracing events and "
    f"{len(SPANS)} spans; {len(ENV_READS)} variables src/ reads, declared but the reserved and the unsafe-when-empty"
)
print(
    f"source-account.yaml: cfn-lint clean; exactly the {len(READER_ACTIONS)} actions the code can use, each under its "
    f"switch, in all {len(combinations)} parameter combinations; Describe/GetStatementResult/Cancel limited to the "
    "session's own statements (statement-owner-iam-userid = ${aws:userid}); trust, ARNs and outputs StackSets-ready"
)
