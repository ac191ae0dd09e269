//! AWS names: partitions, and the patterns of account ids, regions, ARNs and Redshift
//! identifiers that the config and the payloads are checked against. A leaf: it imports nothing
//! of the crate.

use std::sync::LazyLock;

use regex::Regex;

/// The AWS partition of a region (`aws`, `aws-us-gov`, `aws-cn`, ...): AssumeRole, and so this
/// function, cannot cross from one partition to another.
pub(crate) fn partition_of(region: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 6] = [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-isof-", "aws-iso-f"),
    ];
    PREFIXES.iter().find(|(p, _)| region.starts_with(p)).map_or("aws", |(_, partition)| partition)
}

pub(crate) const ACCOUNT_ID_PATTERN: &str = r"^[0-9]{12}$";
pub(crate) static ACCOUNT_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(ACCOUNT_ID_PATTERN).unwrap());
// Commercial, GovCloud, China and ISO partitions: `us-east-1`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1`.
pub(crate) static REGION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$").unwrap());
pub(crate) static ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^arn:(aws(?:-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f)?):iam::([0-9]{12}):role/([A-Za-z0-9_+=,.@-]+/)*[A-Za-z0-9_+=,.@-]{1,64}$",
    )
    .unwrap()
});
// Organizations: `ou-` and the root's 4-32 characters, then 8-32 of the OU's own.
pub(crate) static OU_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$").unwrap());
pub(crate) static ROLE_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_+=,.@-]{1,64}$").unwrap());
// Redshift: 1-63 lowercase letters, digits or hyphens, starting with a letter, no `--`, no trailing `-`.
pub(crate) const CLUSTER_ID_PATTERN: &str = r"^[a-z]([a-z0-9]|-[a-z0-9]){0,62}$";
pub(crate) static CLUSTER_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(CLUSTER_ID_PATTERN).unwrap());
pub(crate) static BUCKET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$").unwrap());
pub(crate) static EXTERNAL_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_+=,.@:/-]+$").unwrap());

pub(crate) const WORKGROUP_PATTERN: &str = r"^[a-z0-9-]{3,64}$";
pub(crate) static WORKGROUP: LazyLock<Regex> = LazyLock::new(|| Regex::new(WORKGROUP_PATTERN).unwrap());
pub(crate) static SECRET_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:(aws(?:-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f)?):secretsmanager:[a-z0-9-]+:([0-9]{12}):secret:[A-Za-z0-9/_+=.@-]+$")
        .unwrap()
});

pub(crate) fn is_workgroup_name(s: &str) -> bool {
    WORKGROUP.is_match(s)
}

pub(crate) fn is_account_id(s: &str) -> bool {
    ACCOUNT_ID.is_match(s)
}
pub(crate) fn is_region(s: &str) -> bool {
    REGION.is_match(s)
}
pub(crate) fn is_cluster_identifier(s: &str) -> bool {
    CLUSTER_ID.is_match(s)
}
