//! Stage 4a: the dataset manifest, format `redshift-registry/v1` (JSON Schema:
//! `schema/dataset-manifest.v1.json`), and the S3 keys everything is written under.
//!
//! Bytes are deterministic: fields in a fixed order, labels sorted, columns by position, no
//! timestamps, so the same warehouse always gives the same manifest and the same content hash.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{DatabaseCatalog, Dataset, DatasetKind, WarehouseCatalog, WarehouseId};

pub const API_VERSION: &str = "redshift-registry/v1";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub platform: &'static str,
    pub location: Location<'a>,
    #[serde(rename = "type")]
    pub dataset_type: DatasetKind,
    pub description: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
    pub view_definition: Option<&'a str>,
    pub external_location: Option<&'a str>,
    pub stats: Option<Stats>,
    pub columns: Vec<ManifestColumn<'a>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location<'a> {
    pub account_id: &'a str,
    pub region: &'a str,
    #[serde(flatten)]
    pub warehouse: &'a WarehouseId,
    pub database: &'a str,
    pub schema: &'a str,
    pub table: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub row_count: Option<i64>,
    pub size_mb: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestColumn<'a> {
    pub name: &'a str,
    pub position: i32,
    #[serde(rename = "type")]
    pub data_type: &'a str,
    pub nullable: bool,
    pub description: Option<&'a str>,
    pub default: Option<&'a str>,
    pub dist_key: bool,
    pub sort_key_position: Option<i32>,
    pub encoding: Option<&'a str>,
    pub partition_key: bool,
}

/// The manifest of one dataset.
pub fn build<'a>(warehouse: &'a WarehouseCatalog, database: &'a DatabaseCatalog, d: &'a Dataset) -> Manifest<'a> {
    let mut columns: Vec<ManifestColumn> = d
        .columns
        .iter()
        .map(|c| ManifestColumn {
            name: &c.name,
            position: c.position,
            data_type: &c.data_type,
            nullable: c.nullable,
            description: c.description.as_deref(),
            default: c.default.as_deref(),
            dist_key: c.dist_key,
            sort_key_position: c.sort_key_position,
            encoding: c.encoding.as_deref(),
            partition_key: c.partition_key,
        })
        .collect();
    columns.sort_by(|a, b| a.position.cmp(&b.position).then_with(|| a.name.cmp(b.name)));
    Manifest {
        api_version: API_VERSION,
        kind: "Dataset",
        name: dataset_name(&database.name, &d.schema, &d.name),
        platform: "redshift",
        location: Location {
            account_id: &warehouse.account_id,
            region: &warehouse.region,
            warehouse: &warehouse.warehouse,
            database: &database.name,
            schema: &d.schema,
            table: &d.name,
        },
        dataset_type: d.kind,
        description: d.description.as_deref(),
        owner: d.owner.as_deref(),
        labels: &warehouse.labels,
        view_definition: d.view_definition.as_deref(),
        external_location: d.location.as_deref(),
        stats: (d.row_count.is_some() || d.size_mb.is_some())
            .then_some(Stats { row_count: d.row_count, size_mb: d.size_mb }),
        columns,
    }
}

/// `[database].[schema].[table]`, names as Redshift stores them.
pub fn dataset_name(database: &str, schema: &str, table: &str) -> String {
    format!("{database}.{schema}.{table}")
}

impl Manifest<'_> {
    /// The manifest's bytes: pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        bytes.push(b'\n');
        bytes
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// S3 keys are at most 1024 bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// One key segment for a name, reversibly: letters and digits of any script, `-` and `_` stay;
/// every other byte becomes `%XX` (so `/`, `.`, spaces, quotes and control characters never
/// reach the key); the empty name is `~`, which no other name can give.
pub fn encode_segment(name: &str) -> String {
    if name.is_empty() {
        return "~".to_string();
    }
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_alphanumeric() && !c.is_control() || c == '-' || c == '_' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// The name a segment stands for; `None` for text [`encode_segment`] cannot produce.
pub fn decode_segment(segment: &str) -> Option<String> {
    if segment == "~" {
        return Some(String::new());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Where everything of one output prefix lives:
///
/// - `{prefix}datasets/{account}/{region}/{cluster|workgroup}/{name}/{database}/{schema}/{table}/{sha256}.json`
/// - `{prefix}index/{account}/{region}/{cluster|workgroup}/{name}.json`
/// - `{prefix}runs/{runId}.json`
///
/// Names are encoded with [`encode_segment`]. A dataset's manifest is named by its content hash,
/// so a new version never overwrites the one the committed index points to.
#[derive(Debug, Clone)]
pub struct Layout {
    pub prefix: String,
}

fn warehouse_path(account: &str, region: &str, warehouse: &WarehouseId) -> String {
    let kind = match warehouse {
        WarehouseId::ClusterIdentifier(_) => "cluster",
        WarehouseId::WorkgroupName(_) => "workgroup",
    };
    format!("{account}/{region}/{kind}/{}", encode_segment(warehouse.name()))
}

impl Layout {
    /// Everything of one warehouse's datasets is under this prefix.
    pub fn datasets_prefix(&self, account: &str, region: &str, warehouse: &WarehouseId) -> String {
        format!("{}datasets/{}/", self.prefix, warehouse_path(account, region, warehouse))
    }

    /// A dataset's versions are under this prefix. Names so long and so full of punctuation that
    /// the key would pass 1024 bytes are replaced by a hash of the three names (the manifest and
    /// the index still carry the names).
    pub fn dataset_prefix(
        &self,
        account: &str,
        region: &str,
        warehouse: &WarehouseId,
        database: &str,
        schema: &str,
        table: &str,
    ) -> String {
        let base = self.datasets_prefix(account, region, warehouse);
        let readable =
            format!("{base}{}/{}/{}/", encode_segment(database), encode_segment(schema), encode_segment(table));
        // 64 hex + ".json"
        if readable.len() + 69 <= MAX_KEY_BYTES {
            readable
        } else {
            format!("{base}~hashed/{}/", sha256_hex(format!("{database}\0{schema}\0{table}").as_bytes()))
        }
    }

    pub fn index_key(&self, account: &str, region: &str, warehouse: &WarehouseId) -> String {
        format!("{}index/{}.json", self.prefix, warehouse_path(account, region, warehouse))
    }

    /// Every warehouse index of one account and region.
    pub fn region_index_prefix(&self, account: &str, region: &str) -> String {
        format!("{}index/{account}/{region}/", self.prefix)
    }

    pub fn run_key(&self, run_id: &str) -> String {
        format!("{}runs/{run_id}.json", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_stay_distinct() {
        let names = ["", "~", "%", "a/b", "..", ".", "Order \"Lines\"", "x y", "ünï ✓", "a\nb", "*/", "%41", "A", "a"];
        let encoded: Vec<String> = names.iter().map(|n| encode_segment(n)).collect();
        for (n, e) in names.iter().zip(&encoded) {
            assert_eq!(decode_segment(e).as_deref(), Some(*n), "{e}");
            assert!(!e.contains('/') && !e.contains('.') && !e.contains(' '), "{e}");
        }
        let mut unique = encoded.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    /// Property: for random names built from the characters that break keys, SQL and JSON,
    /// encoding round-trips, stays one segment, never collides, and fits S3 once hashed if long.
    #[test]
    fn random_hostile_names_round_trip() {
        const PIECES: [&str; 24] = [
            "'",
            "\"",
            "\\",
            "\n",
            "\r",
            "\t",
            "*/",
            "/*",
            "--",
            ";",
            "/",
            ".",
            "..",
            "%",
            "~",
            " ",
            "é",
            "ß",
            "日本",
            "🦀",
            "\u{0}",
            "\u{7f}",
            "DROP TABLE t;",
            "a",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut seen = std::collections::HashMap::new();
        let layout = Layout { prefix: "p/".into() };
        let wh = WarehouseId::ClusterIdentifier("c".into());
        for _ in 0..5000 {
            let name: String = (0..rng.usize(0..12)).map(|_| PIECES[rng.usize(..PIECES.len())]).collect();
            let e = encode_segment(&name);
            assert_eq!(decode_segment(&e).as_deref(), Some(name.as_str()));
            assert!(!e.is_empty() && !e.contains('/') && !e.chars().any(char::is_control), "{e:?}");
            if let Some(other) = seen.insert(e.clone(), name.clone()) {
                assert_eq!(other, name, "two names share {e:?}");
            }
            let long = name.repeat(127 / name.len().max(1)).chars().take(127).collect::<String>();
            let key = layout.dataset_prefix("111111111111", "us-east-1", &wh, &long, &long, &long);
            assert!(key.len() + 69 <= MAX_KEY_BYTES, "{} bytes", key.len());
        }
    }

    #[test]
    fn hostile_text_makes_valid_json() {
        let column = crate::catalog::Column {
            name: "a\"b\\c\nd".into(),
            position: 1,
            data_type: "character varying(256)".into(),
            nullable: true,
            default: Some("'x'::character varying".into()),
            dist_key: false,
            sort_key_position: None,
            encoding: None,
            description: Some("*/ DROP TABLE t; -- \u{0} 🦀".into()),
            partition_key: false,
        };
        let dataset = Dataset {
            schema: "".into(),
            name: "t\"; --".into(),
            kind: DatasetKind::View,
            owner: None,
            description: Some("it's \"quoted\"\n*/".into()),
            view_definition: Some("SELECT '\\' AS x".into()),
            location: None,
            row_count: None,
            size_mb: None,
            columns: vec![column],
        };
        let db = DatabaseCatalog {
            name: "dev".into(),
            kind: crate::catalog::DatabaseKind::Local,
            datasets: vec![],
            notes: vec![],
            unconfirmed: crate::catalog::Unconfirmed::Nothing,
        };
        let wh = WarehouseCatalog {
            account_id: "111111111111".into(),
            region: "us-east-1".into(),
            warehouse: WarehouseId::ClusterIdentifier("c".into()),
            labels: BTreeMap::new(),
            databases: vec![],
            unread_databases: vec![],
        };
        let bytes = build(&wh, &db, &dataset).to_bytes();
        let parsed: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(parsed["name"], "dev..t\"; --");
        assert_eq!(parsed["location"]["schema"], "");
        assert_eq!(parsed["columns"][0]["description"], "*/ DROP TABLE t; -- \u{0} 🦀");
        assert_eq!(bytes, build(&wh, &db, &dataset).to_bytes(), "deterministic");
    }
}
