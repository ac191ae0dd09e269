//! Every bad config and event is refused before any AWS call, with an error naming what is wrong
//! and where.

use redshift_registry::config::{Config, DeploymentDefaults, Reads, Source};
use redshift_registry::event::{self, Trigger};
use serde_json::{json, Value};

/// The role assumed in each account source, in the config's order.
fn account_roles(c: &Config) -> Vec<&str> {
    c.accounts().map(|a| a.role_arn.as_str()).collect()
}

fn refused(config: Value) -> String {
    Config::parse(&config.to_string(), &DeploymentDefaults::default())
        .expect_err("the config should be refused")
        .to_string()
}

fn valid() -> Value {
    json!({
        "output": {"bucket": "my-registry", "prefix": "redshift/"},
        "roleName": "DataRegistryRedshiftReader",
        "externalId": "optional",
        "pullRedshiftComments": false,
        "sources": [
            {"accountId": "111111111111", "regions": ["us-east-1", "eu-west-1"]},
            {"accountId": "222222222222", "roleArn": "arn:aws:iam::222222222222:role/Custom",
             "clusters": [{"region": "us-east-1", "clusterIdentifier": "sales"}]}
        ]
    })
}

/// `base` with the value at `pointer` set, the last key added if it is not there.
fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    let parent = base.pointer_mut(parent).expect("the parent exists");
    match parent {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        other => *other.get_mut(key.parse::<usize>().expect("an index")).expect("the index exists") = value,
    }
    base
}

#[test]
fn the_issue_example_is_valid_and_role_arns_resolve() {
    let c = Config::parse(&valid().to_string(), &DeploymentDefaults::default()).unwrap();
    assert_eq!(c.output.prefix, "redshift/");
    assert_eq!(
        account_roles(&c),
        ["arn:aws:iam::111111111111:role/DataRegistryRedshiftReader", "arn:aws:iam::222222222222:role/Custom"]
    );
    let Source::Account(named) = &c.sources[1] else { panic!("source 1 is an account source: {c:?}") };
    assert!(
        matches!(&named.reads, Reads::Named { clusters, workgroups } if clusters.len() == 1 && workgroups.is_empty())
    );
}

#[test]
fn bad_configs_name_the_json_path() {
    let cases: Vec<(Value, &str)> = vec![
        (
            with(valid(), "/sources/0/accountId", json!("1234")),
            "$.sources[0].accountId: \"1234\" is not a 12-digit AWS account id",
        ),
        (
            with(valid(), "/sources/0/accountId", json!("11111111111a")),
            "$.sources[0].accountId: \"11111111111a\" is not a 12-digit",
        ),
        (
            with(valid(), "/sources/0/regions/1", json!("Europe")),
            "$.sources[0].regions[1]: \"Europe\" is not an AWS region name",
        ),
        (
            with(valid(), "/sources/1/clusters/0/region", json!("us_east_1")),
            "$.sources[1].clusters[0].region: \"us_east_1\" is not an AWS region name",
        ),
        (
            with(valid(), "/sources/1/roleArn", json!("arn:aws:iam::222222222222:user/Bob")),
            "$.sources[1].roleArn: \"arn:aws:iam::222222222222:user/Bob\" is not an IAM role ARN",
        ),
        (
            with(valid(), "/sources/1/roleArn", json!("arn:aws:iam::333333333333:role/Custom")),
            "$.sources[1].roleArn: role is in account 333333333333 but the source is account 222222222222",
        ),
        (with(valid(), "/sources", json!([])), "$.sources: empty"),
        (with(valid(), "/sources/0/regions", json!([])), "$.sources[0].regions: empty"),
        (with(valid(), "/sources/1/clusters", json!([])), "$.sources[1].clusters: empty"),
        (
            with(valid(), "/sources/1/accountId", json!("111111111111")),
            "$.sources[1].accountId: account 111111111111 is listed twice",
        ),
        (
            with(valid(), "/sources/0/regions", json!(["us-east-1", "us-east-1"])),
            "$.sources[0].regions[1]: region us-east-1 is listed twice",
        ),
        (
            with(valid(), "/sources/1/clusters/0/clusterIdentifier", json!("Sales_DB")),
            "$.sources[1].clusters[0].clusterIdentifier: \"Sales_DB\" is not a Redshift cluster identifier",
        ),
        (with(valid(), "/sources/0", json!({"accountId": "111111111111"})), "$.sources[0]: has neither regions"),
        (
            with(
                valid(),
                "/sources/0",
                json!({"accountId": "111111111111", "regions": ["us-east-1"], "clusters": [{"region": "us-east-1", "clusterIdentifier": "a"}]}),
            ),
            "$.sources[0]: has both regions and clusters",
        ),
        (with(valid(), "/output", json!({"prefix": "x/"})), "$.output.bucket: missing"),
        (
            with(valid(), "/output/bucket", json!("My_Bucket")),
            "$.output.bucket: \"My_Bucket\" is not a valid S3 bucket name",
        ),
        (with(valid(), "/externalId", json!("x")), "$.externalId: must be 2-1224 characters"),
        (with(valid(), "/roleName", json!("bad role")), "$.roleName: \"bad role\" is not a valid IAM role name"),
        (
            with(valid(), "/pullRedshiftComments", json!("yes")),
            "$.pullRedshiftComments: \"yes\" is not of type \"boolean\"",
        ),
        (
            with(valid(), "/sources/0/regions", json!("us-east-1")),
            "$.sources[0].regions: \"us-east-1\" is not of type \"array\"",
        ),
        (
            with(valid(), "/sources/1/workgroups", json!([{"region": "us-east-1", "workgroupName": "Bad_WG"}])),
            "$.sources[1].workgroups[0].workgroupName: \"Bad_WG\" is not a workgroup name",
        ),
        (with(valid(), "/sources/1/workgroups", json!([])), "$.sources[1].workgroups: empty: name at least one workgroup"),
        (
            with(valid(), "/sources/1/clusters/0/secretArn", json!("arn:aws:secretsmanager:us-east-1:333333333333:secret:r-AbCd")),
            "$.sources[1].clusters[0].secretArn: secret is in account 333333333333 but the source is account 222222222222",
        ),
        (
            with(
                with(valid(), "/sources/1/clusters/0/secretArn", json!("arn:aws:secretsmanager:us-east-1:222222222222:secret:r-1")),
                "/sources/1/clusters/0/dbUser",
                json!("reader"),
            ),
            "$.sources[1].clusters[0]: has both dbUser and secretArn",
        ),
        (with(valid(), "/filters", json!({"schemas": {"include": ["("]}})), "$.filters.schemas.include[0]: \"(\" is not a valid regex"),
        // Valid alone, broken once anchored: the `#` comment of (?x) swallows the closing `)$`.
        (
            with(valid(), "/filters", json!({"tables": {"exclude": ["x", "(?x)tmp_.* # scratch tables"]}})),
            "$.filters.tables.exclude[1]: \"(?x)tmp_.* # scratch tables\" is not a valid regex once anchored",
        ),
        (with(valid(), "/limits", json!({"databasesPerWarehouse": 0})), "$.limits.databasesPerWarehouse: must be 1-50"),
        (with(valid(), "/limits", json!({"statementTimeout": 5})), "$.limits.statementTimeout: unknown key `statementTimeout`"),
        (with(valid(), "/sources/0/organization", organization()), "$.sources[0]: has both accountId and organization"),
        (
            with(valid(), "/sources/0", json!({"regions": ["us-east-1"]})),
            "$.sources[0]: has neither accountId (one account) nor organization",
        ),
        (
            with_organization(with(organization(), "/organizationalUnits", json!(["ou-ab12-cd34ef56", "r-ab12"]))),
            "$.sources[2].organization.organizationalUnits[1]: \"r-ab12\" is not an organizational unit id",
        ),
        (
            with_organization(with(organization(), "/excludeAccounts", json!(["1234"]))),
            "$.sources[2].organization.excludeAccounts[0]: \"1234\" is not a 12-digit AWS account id",
        ),
        (
            with_organization(with(organization(), "/roleArn", json!("arn:aws:iam::999999999999:user/Org"))),
            "$.sources[2].organization.roleArn: \"arn:aws:iam::999999999999:user/Org\" is not an IAM role ARN",
        ),
        (
            with_organization(with(organization(), "/roleArn", json!("arn:aws-cn:iam::999999999999:role/Org"))),
            "$.sources[2].organization.roleArn: partition aws-cn, but the function runs in partition aws",
        ),
        (with_organization(with(organization(), "/regions", json!([]))), "$.sources[2].organization.regions: empty"),
        (
            with_organization(with(organization(), "/regions", json!(["us-east-1", "us-east-1"]))),
            "$.sources[2].organization.regions[1]: region us-east-1 is listed twice",
        ),
        (
            with_organization(with(organization(), "/regions", json!(["cn-north-1"]))),
            "$.sources[2].organization.regions[0]: region cn-north-1 is in partition aws-cn",
        ),
        (
            with_organization(json!({"roleArn": "arn:aws:iam::999999999999:role/Org"})),
            "$.sources[2].organization: missing key \"regions\"",
        ),
        (with_organization(with(organization(), "/ous", json!([]))), "$.sources[2].organization.ous: unknown key `ous`"),
        (
            with_organization(with(organization(), "/roleName", json!("bad role"))),
            "$.sources[2].organization.roleName: \"bad role\" is not a valid IAM role name",
        ),
        (
            with(with_organization(organization()), "/sources/2/regions", json!(["us-east-1"])),
            "$.sources[2].regions: not beside organization",
        ),
    ];
    for (config, expected) in cases {
        let message = refused(config);
        assert!(message.contains(expected), "expected {expected:?} in {message:?}");
    }
}

/// An organization source, valid beside the sources of `valid()`.
fn organization() -> Value {
    json!({"roleArn": "arn:aws:iam::999999999999:role/OrganizationReader", "organizationalUnits": ["ou-ab12-cd34ef56"],
           "excludeAccounts": ["111111111111"], "regions": ["us-east-1"]})
}

/// `valid()` with `{"organization": org}` as its third source.
fn with_organization(org: Value) -> Value {
    let mut c = valid();
    c["sources"].as_array_mut().unwrap().push(json!({"organization": org}));
    c
}

#[test]
fn organization_sources_resolve_member_roles_and_need_a_reader_role() {
    let c = Config::parse(&with_organization(organization()).to_string(), &DeploymentDefaults::default()).unwrap();
    assert_eq!(c.organizations().map(|(i, _)| i).collect::<Vec<_>>(), [2]);
    let (_, org) = c.organizations().next().unwrap();
    assert_eq!(org.member_role_arn("333333333333"), "arn:aws:iam::333333333333:role/DataRegistryRedshiftReader");
    let own = with(organization(), "/roleName", json!("MemberReader"));
    let c = Config::parse(&with_organization(own).to_string(), &DeploymentDefaults::default()).unwrap();
    let (_, org) = c.organizations().next().unwrap();
    assert_eq!(org.member_role_arn("333333333333"), "arn:aws:iam::333333333333:role/MemberReader");

    let message = refused(json!({"output": {"bucket": "my-registry"}, "sources": [{"organization": organization()}]}));
    assert!(
        message.contains("$.sources[0].organization.roleName: no reader role for the member accounts"),
        "{message}"
    );
}

#[test]
fn unknown_keys_are_refused_with_their_path() {
    let mut c = valid();
    c["sources"][1]["clusters"][0]["clusterIdentfier"] = json!("typo");
    let message = refused(c);
    assert!(message.contains("$.sources[1].clusters[0].clusterIdentfier: unknown key `clusterIdentfier`"), "{message}");

    let mut c = valid();
    c["outputs"] = json!({"datahub": {}});
    let message = refused(c);
    assert!(message.contains("$.outputs.datahub: unknown key `datahub`"), "{message}");

    let mut c = valid();
    c["outputs"] = json!({"backstage": {"prefix": "datasets/bs", "owner": "not a ref"}});
    let message = refused(c);
    assert!(message.contains("$.outputs.backstage.prefix: \"datasets/bs/\" overlaps datasets/"), "{message}");
    assert!(message.contains("$.outputs.backstage.owner: \"not a ref\" is not a Backstage entity ref"), "{message}");

    let mut c = valid();
    c["outputs"] = json!({"openlineage": {"prefix": "namespaces"}});
    let message = refused(c);
    assert!(message.contains("$.outputs.openlineage.prefix: \"namespaces/\" overlaps namespaces/"), "{message}");
}

#[test]
fn a_source_without_role_needs_role_name() {
    let mut c = valid();
    c.as_object_mut().unwrap().remove("roleName");
    let message = refused(c);
    assert!(
        message.contains(
            "$.sources[0].roleArn: no role to assume: set roleName at the top level or roleArn in this source"
        ),
        "{message}"
    );
    assert!(!message.contains("$.sources[1]"), "source 1 has its own roleArn: {message}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let c = with(with(valid(), "/sources/0/accountId", json!("1")), "/sources/0/regions/0", json!("mars"));
    let message = refused(c);
    assert!(message.contains("$.sources[0].accountId") && message.contains("$.sources[0].regions[0]"), "{message}");
}

/// Problems are listed in the order the keys are read: the destination, each source (its shape
/// before its parts), the formats, the execution, the limits.
#[test]
fn problems_are_listed_in_the_order_of_the_keys() {
    let mut c = with(valid(), "/output/bucket", json!("B"));
    c = with(c, "/sources/0/clusters", json!([{"region": "us-east-1", "clusterIdentifier": "x"}]));
    c = with(c, "/sources/0/regions/0", json!("mars"));
    c = with(c, "/outputs", json!({"openlineage": {"prefix": "datasets/"}}));
    c = with(c, "/execution", json!({"mode": "fanout", "maxReceiveCount": 0}));
    c = with(c, "/limits", json!({"accountsInParallel": 0}));
    let paths: Vec<String> = Config::parse(&c.to_string(), &DeploymentDefaults::default())
        .unwrap_err()
        .problems
        .into_iter()
        .map(|p| p.path)
        .collect();
    assert_eq!(
        paths,
        [
            "$.output.bucket",
            "$.sources[0]",
            "$.sources[0].regions[0]",
            "$.outputs.openlineage.prefix",
            "$.execution.queueUrl",
            "$.execution.maxReceiveCount",
            "$.limits.accountsInParallel",
        ]
    );
}

#[test]
fn not_json_is_refused() {
    let e = Config::parse("{\"sources\": [", &DeploymentDefaults::default()).unwrap_err().to_string();
    assert!(e.starts_with("invalid config: $"), "{e}");
    assert!(e.contains("EOF"), "{e}");
}

#[test]
fn deployment_values_fill_gaps_and_must_agree() {
    let defaults = DeploymentDefaults {
        bucket: Some("deployed-bucket".into()),
        prefix: Some("reg".into()),
        role_name: Some("DeployedRole".into()),
        ..DeploymentDefaults::default()
    };
    let minimal = json!({"sources": [{"accountId": "111111111111", "regions": ["us-east-1"]}]});
    let c = Config::parse(&minimal.to_string(), &defaults).unwrap();
    assert_eq!(c.output.bucket, "deployed-bucket");
    assert_eq!(c.output.prefix, "reg/");
    assert_eq!(account_roles(&c), ["arn:aws:iam::111111111111:role/DeployedRole"]);

    let e = Config::parse(&valid().to_string(), &defaults).unwrap_err().to_string();
    assert!(
        e.contains("$.output.bucket: \"my-registry\" differs from REGISTRY_OUTPUT_BUCKET=\"deployed-bucket\""),
        "{e}"
    );
    assert!(e.contains("$.roleName: \"DataRegistryRedshiftReader\" differs from REGISTRY_ROLE_NAME"), "{e}");
}

/// AssumeRole cannot cross partitions: ARNs are built in the function's own partition, and
/// regions or ARNs of another are refused with the path that names them.
#[test]
fn arns_and_regions_follow_the_functions_partition() {
    let gov = DeploymentDefaults { region: Some("us-gov-west-1".into()), ..DeploymentDefaults::default() };
    let minimal = json!({"output": {"bucket": "b-b-b"}, "roleName": "Reader",
        "sources": [{"accountId": "111111111111", "regions": ["us-gov-east-1"]}]});
    let c = Config::parse(&minimal.to_string(), &gov).unwrap();
    assert_eq!(account_roles(&c), ["arn:aws-us-gov:iam::111111111111:role/Reader"]);

    let e = Config::parse(&minimal.to_string(), &DeploymentDefaults::default()).unwrap_err().to_string();
    assert!(e.contains("$.sources[0].regions[0]: region us-gov-east-1 is in partition aws-us-gov, but the function runs in partition aws"), "{e}");

    let mut mixed = valid();
    mixed["sources"][0]["roleArn"] = json!("arn:aws-cn:iam::111111111111:role/Reader");
    mixed["sources"][1]["clusters"][0]["region"] = json!("cn-north-1");
    let e = Config::parse(&mixed.to_string(), &DeploymentDefaults::default()).unwrap_err().to_string();
    assert!(e.contains("$.sources[0].roleArn: partition aws-cn, but the function runs in partition aws"), "{e}");
    assert!(e.contains("$.sources[1].clusters[0].region: region cn-north-1 is in partition aws-cn"), "{e}");
}

fn load_event(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_scheduled_event_file_is_a_full_run() {
    let r = event::parse(&load_event("scheduled.json")).unwrap();
    assert_eq!(r.trigger, Trigger::Scheduled);
    assert!(!r.dry_run);
    assert!(r.scope.is_full());
}

#[test]
fn the_manual_event_file_narrows_the_run() {
    let r = event::parse(&load_event("manual.json")).unwrap();
    assert_eq!(r.trigger, Trigger::Manual);
    assert!(!r.scope.is_full());
}

#[test]
fn manual_payloads_have_every_key_optional() {
    let r = event::parse(&json!({})).unwrap();
    assert_eq!((r.trigger, r.dry_run, r.scope.is_full()), (Trigger::Manual, false, true));
    let r = event::parse(
        &json!({"dryRun": true, "accounts": ["111111111111"], "regions": ["eu-west-1"], "clusters": ["sales"]}),
    )
    .unwrap();
    assert!(r.dry_run);
    assert!(
        r.scope.accounts.contains("111111111111")
            && r.scope.regions.contains("eu-west-1")
            && r.scope.clusters.contains("sales")
    );
}

#[test]
fn malformed_events_say_which_shapes_are_accepted() {
    let cases = [
        (json!([1, 2]), "the payload is an array, not a JSON object"),
        (json!("run"), "the payload is a string"),
        (json!({"dryrun": true}), "unknown field `dryrun`"),
        (json!({"dryRun": "yes"}), "invalid type: string \"yes\", expected a boolean"),
        (json!({"accounts": ["12"]}), "accounts[0] = \"12\" is not a 12-digit account id"),
        (json!({"regions": ["moon-1"]}), "regions[0] = \"moon-1\" is not a region name"),
        (
            json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}),
            "EventBridge event with source \"aws.s3\" and detail-type \"Object Created\" is not a scheduled event",
        ),
        (json!({"source": "aws.events"}), "looks like an EventBridge event but missing field `detail-type`"),
    ];
    for (payload, problem) in cases {
        let e = event::parse(&payload).unwrap_err().to_string();
        assert!(e.contains(problem), "expected {problem:?} in {e:?}");
        assert!(e.contains("\"detail-type\": \"Scheduled Event\"") && e.contains("\"dryRun\": bool"), "{e}");
    }
}
