//! Every S3 key the function writes, in one place: the key layout under the output prefix, and
//! how names become key segments. A leaf over the catalog.

use sha2::{Digest, Sha256};

use crate::catalog::WarehouseId;

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// S3 keys are at most 1024 bytes of UTF-8.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// One key segment for a name, reversibly: letters and digits of any script, `-` and `_` stay;
/// every other byte becomes `%XX` (so `/`, `.`, spaces, quotes and control characters never
/// reach the key); the empty name is `~`, which no other name can give.
pub(crate) fn encode_segment(name: &str) -> String {
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

pub(crate) fn warehouse_path(account: &str, region: &str, warehouse: &WarehouseId) -> String {
    format!("{account}/{region}/{}/{}", warehouse.kind(), encode_segment(warehouse.name()))
}

/// Where everything of one output prefix lives:
///
/// - `{prefix}datasets/{account}/{region}/{cluster|workgroup}/{name}/{database}/{schema}/{table}.json`
/// - `{prefix}index/[{format}/]{account}/{region}/{cluster|workgroup}/{name}.json`
/// - `{prefix}namespaces/{namespace}.json`
/// - `{prefix}runs/{runId}.json`, and with fan-out `{prefix}runs/{runId}/plan.json`,
///   `{prefix}runs/{runId}/shards/{shardId}.json` and `{prefix}runs/open/{runId}`
/// - `{prefix}{outputs.*.prefix}...`: the Backstage and OpenLineage files
///
/// Names are encoded with [`encode_segment`], which never yields `.`, so `{table}.json` cannot
/// meet a segment of another name.
#[derive(Debug, Clone)]
pub struct Layout {
    pub prefix: String,
}

impl Layout {
    /// The folders the manifests, the indexes, the namespace records and the runs own under the
    /// prefix: another output's folder may not overlap them.
    pub(crate) const FOLDERS: [&str; 4] = ["datasets/", "index/", "namespaces/", "runs/"];

    /// Everything of one warehouse's datasets is under this prefix.
    pub(crate) fn datasets_prefix(&self, account: &str, region: &str, warehouse: &WarehouseId) -> String {
        format!("{}datasets/{}/", self.prefix, warehouse_path(account, region, warehouse))
    }

    /// A dataset's manifest: one object at a stable key, overwritten when its content changes.
    /// Names so long and so full of punctuation that the key would pass 1024 bytes are replaced
    /// by a hash of the three names (the manifest and the index still carry the names).
    pub(crate) fn dataset_key(
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
            format!("{base}{}/{}/{}.json", encode_segment(database), encode_segment(schema), encode_segment(table));
        if readable.len() <= MAX_KEY_BYTES {
            readable
        } else {
            format!("{base}~hashed/{}.json", sha256_hex(format!("{database}\0{schema}\0{table}").as_bytes()))
        }
    }

    /// Which warehouse holds a namespace: see [`NamespaceRecord`].
    pub(crate) fn namespace_key(&self, namespace: &str) -> String {
        format!("{}namespaces/{}.json", self.prefix, encode_segment(namespace))
    }

    /// A run's report, or a fanned-out run's summary.
    pub(crate) fn run_key(&self, run_id: &str) -> String {
        format!("{}runs/{run_id}.json", self.prefix)
    }

    /// `runs/{runId}/plan.json`: what a fanned-out run set out to do.
    pub fn plan_key(&self, run_id: &str) -> String {
        format!("{}runs/{run_id}/plan.json", self.prefix)
    }

    /// Where a fanned-out run's shards report.
    pub(crate) fn shards_prefix(&self, run_id: &str) -> String {
        format!("{}runs/{run_id}/shards/", self.prefix)
    }

    pub(crate) fn shard_key(&self, run_id: &str, shard_id: &str) -> String {
        format!("{}{shard_id}.json", self.shards_prefix(run_id))
    }

    /// `runs/open/`: the fanned-out runs whose summary is not final yet. Listing it finds the
    /// runs a lost or stuck shard left without one, in a folder that stays small.
    pub(crate) fn open_prefix(&self) -> String {
        format!("{}runs/open/", self.prefix)
    }

    pub(crate) fn open_key(&self, run_id: &str) -> String {
        format!("{}{run_id}", self.open_prefix())
    }

    /// Where a format's indexes are: `index/` for the manifests, `index/{format}/` for others.
    pub(crate) fn index_root(&self, format: Option<&str>) -> String {
        match format {
            None => format!("{}index/", self.prefix),
            Some(format) => format!("{}index/{format}/", self.prefix),
        }
    }

    /// The folder of a format whose files are under a prefix of its own (`outputs.*.prefix`).
    pub(crate) fn output_root(&self, folder: &str) -> String {
        format!("{}{folder}", self.prefix)
    }
}

/// A warehouse's index under a format's index root.
pub fn index_key(root: &str, account: &str, region: &str, warehouse: &WarehouseId) -> String {
    format!("{root}{}.json", warehouse_path(account, region, warehouse))
}

/// `cluster/<name>.json` or `workgroup/<name>.json`, relative to a region's index prefix.
pub(crate) fn warehouse_of_index_key(relative: &str) -> Option<WarehouseId> {
    let (kind, file) = relative.split_once('/')?;
    let name = decode_segment(file.strip_suffix(".json")?)?;
    match kind {
        "cluster" => Some(WarehouseId::ClusterIdentifier(name)),
        "workgroup" => Some(WarehouseId::WorkgroupName(name)),
        _ => None,
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
            let key = layout.dataset_key("111111111111", "us-east-1", &wh, &long, &long, &long);
            assert!(key.len() <= MAX_KEY_BYTES, "{} bytes", key.len());
        }
    }
}
