//! Stage 4, second format: Backstage catalog entities, for Backstage's `AwsS3EntityProvider`,
//! which lists a prefix and ingests every key as a location (full mutation: a key that goes
//! takes its entities with it).
//!
//! Per warehouse, under `{output.prefix}{backstage.prefix}{account}/{region}/{cluster|workgroup}/{name}/`:
//! `warehouse.yaml` (one `Resource` of type `redshift-cluster` or `redshift-workgroup`) and, per
//! database, `{slug}-{hash}.yaml` with one `Resource` per dataset, at most
//! [`ENTITIES_PER_FILE`] a file (`{slug}-{hash}-2.yaml`... past that). Documents are JSON, which
//! YAML 1.2 reads as it is: exact quoting of any name, no YAML library. Keys are ASCII without
//! space, `#`, `?`, `%` or `*`, which Backstage's S3 reader would not read back.
//!
//! Entity names are a readable lowercase slug plus 16 hex digits of the sha256 of the exact
//! identity (account, region, warehouse, database, schema, table), so they are valid, at most
//! 63 characters, and unique across the whole output case-insensitively for any Redshift name.

use serde_json::{json, Map, Value};

use crate::catalog::{DatabaseCatalog, Dataset, ReadEvent, WarehouseCatalog, WarehouseId};
use crate::config::{is_entity_ref, BackstageOutput};
use crate::layout::{sha256_hex, Layout};
use crate::manifest;
use crate::publish::{unseen_databases, ByDatabase, File, Format, IndexEntry};

/// Entities per file: a 100,000-table database is 100 files of bounded size, not one.
pub(crate) const ENTITIES_PER_FILE: usize = 1000;
const ANNOTATION: &str = "redshift-registry.io";
/// The AWS module's well-known annotations (catalog-backend-module-aws, `constants.ts`).
const AWS_ACCOUNT_ID: &str = "amazonaws.com/account-id";
const AWS_ARN: &str = "amazonaws.com/arn";

/// What Backstage keeps of a warehouse while it is read: the owner and parent entity of its
/// datasets, and the datasets of each database whose read has not ended.
#[derive(Default)]
pub(crate) struct Pending {
    owner: String,
    parent: String,
    databases: ByDatabase,
}

pub(crate) struct BackstageFormat {
    layout: Layout,
    root: String,
    index_root: String,
    owner: String,
    owner_tag: Option<String>,
    system: Option<String>,
    /// `metadata.namespace` of every entity; Backstage's `default` when absent.
    namespace: Option<String>,
}

impl BackstageFormat {
    pub(crate) fn new(layout: &Layout, config: &BackstageOutput) -> Self {
        Self {
            layout: layout.clone(),
            root: layout.output_root(&config.prefix),
            index_root: layout.index_root(Some("backstage")),
            owner: config.owner.clone(),
            owner_tag: config.owner_tag.clone(),
            system: config.system.clone(),
            namespace: config.namespace.clone(),
        }
    }

    /// The warehouse's tag named `ownerTag` when it holds an entity ref, else `owner`.
    fn owner(&self, catalog: &WarehouseCatalog, notes: &mut Vec<String>) -> String {
        let Some(tag) = &self.owner_tag else { return self.owner.clone() };
        match catalog.labels.get(tag) {
            Some(v) if is_entity_ref(v) => v.clone(),
            found => {
                notes.push(format!(
                    "warehouse {} has {}, not an entity ref; its entities are owned by {}",
                    catalog.warehouse.name(),
                    found.map_or(format!("no tag {tag:?}"), |v| format!("tag {tag:?} = {v:?}")),
                    self.owner
                ));
                self.owner.clone()
            }
        }
    }

    /// `metadata` with the namespace and the console link every entity carries.
    fn metadata(&self, catalog: &WarehouseCatalog, mut metadata: Value) -> Value {
        if let Some(namespace) = &self.namespace {
            metadata["namespace"] = json!(namespace);
        }
        if let Some(link) = console_link(catalog) {
            metadata["links"] = json!([link]);
        }
        metadata
    }

    /// A ref to an entity of this output's namespace.
    fn resource_ref(&self, name: &str) -> String {
        format!("resource:{}/{name}", self.namespace.as_deref().unwrap_or("default"))
    }

    /// A dataset depends on its warehouse and on every upstream dataset whose warehouse is
    /// known: entity names come from identities, so no lookup is needed, across warehouses too.
    fn depends_on(&self, catalog: &WarehouseCatalog, d: &Dataset, parent: &str) -> Vec<String> {
        let mut refs = vec![self.resource_ref(parent)];
        for u in &d.upstream {
            let (Some(name), Some(db), Some(schema), Some(table)) = (&u.name, &u.database, &u.schema, &u.table) else {
                continue;
            };
            let (account, region, kind, warehouse) = match &u.warehouse {
                None => (&catalog.account_id, &catalog.region, catalog.warehouse.kind(), catalog.warehouse.name()),
                Some(w) => match (&w.region, &w.cluster_identifier, &w.workgroup_name) {
                    (Some(region), Some(c), _) => (&w.account_id, region, "cluster", c.as_str()),
                    (Some(region), None, Some(wg)) => (&w.account_id, region, "workgroup", wg.as_str()),
                    _ => continue,
                },
            };
            let identity = [account.as_str(), region, kind, warehouse, db, schema, table];
            refs.push(self.resource_ref(&entity_name(name, &identity)));
        }
        refs
    }

    fn spec(&self, kind: &str, owner: &str, depends_on: Vec<String>) -> Value {
        let mut spec = json!({"type": kind, "owner": owner});
        if !depends_on.is_empty() {
            spec["dependsOn"] = json!(depends_on);
        }
        if let Some(system) = &self.system {
            spec["system"] = json!(system);
        }
        spec
    }
}

/// The lowercase ASCII letters and digits of `text`, other runs as one `-`, at most `max` long.
fn slug(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    out.trim_end_matches('-').to_string()
}

/// `{slug}-{16 hex of sha256(identity)}`, at most 63 characters.
pub(crate) fn entity_name(readable: &str, identity: &[&str]) -> String {
    let hash = &sha256_hex(serde_json::to_string(identity).expect("strings serialise").as_bytes())[..16];
    match slug(readable, 63 - 17) {
        s if s.is_empty() => hash.to_string(),
        s => format!("{s}-{hash}"),
    }
}

/// The annotations every entity of a warehouse carries: where it is, and the AWS tags as one
/// JSON value (tags are neither valid labels nor always valid annotation keys).
fn place_annotations(catalog: &WarehouseCatalog) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert(AWS_ACCOUNT_ID.into(), json!(catalog.account_id));
    let id_key = match catalog.warehouse {
        WarehouseId::ClusterIdentifier(_) => "cluster-identifier",
        WarehouseId::WorkgroupName(_) => "workgroup-name",
    };
    a.insert(format!("{ANNOTATION}/account-id"), json!(catalog.account_id));
    a.insert(format!("{ANNOTATION}/region"), json!(catalog.region));
    a.insert(format!("{ANNOTATION}/{id_key}"), json!(catalog.warehouse.name()));
    a.insert(format!("{ANNOTATION}/aws-tags"), json!(serde_json::to_string(&catalog.labels).expect("tags serialise")));
    a
}

/// The warehouse's page in the Amazon Redshift console, where the partition has a public one.
fn console_link(catalog: &WarehouseCatalog) -> Option<Value> {
    let region = &catalog.region;
    let host = match crate::names::partition_of(region) {
        "aws" => format!("https://{region}.console.aws.amazon.com"),
        "aws-cn" => "https://console.amazonaws.cn".to_string(),
        "aws-us-gov" => "https://console.amazonaws-us-gov.com".to_string(),
        _ => return None,
    };
    let page = match &catalog.warehouse {
        WarehouseId::ClusterIdentifier(id) => format!("cluster-details?cluster={id}"),
        WarehouseId::WorkgroupName(name) => format!("serverless-workgroup?workgroup={name}"),
    };
    let url = format!("{host}/redshiftv2/home?region={region}#{page}");
    Some(json!({"url": url, "title": "Amazon Redshift console", "icon": "cloud"}))
}

/// One YAML document. JSON is YAML 1.2, except that YAML does not allow DEL and the C1 controls
/// (U+007F-U+009F) raw, nor U+FFFE and U+FFFF (outside its printable set, YAML 1.2 section
/// 5.1), nor a byte order mark U+FEFF inside a document (section 5.2), which JSON leaves as they
/// are: they are escaped (they can only stand inside strings, where `\u` means the same in both).
fn document(entity: &Value) -> String {
    let json = serde_json::to_string_pretty(entity).expect("an entity serialises");
    let mut out = String::with_capacity(json.len() + 5);
    out.push_str("---\n");
    for c in json.chars() {
        match c {
            '\u{7f}'..='\u{9f}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

/// A Markdown table of the columns, which Backstage's About card renders.
fn description(d: &Dataset) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace(['\n', '\r'], " ");
    let mut text = d.description.as_deref().map(|c| format!("{}\n\n", cell(c))).unwrap_or_default();
    text.push_str("| # | column | type | nullable |\n|---|---|---|---|\n");
    for c in &d.columns {
        let nullable = if c.nullable { "yes" } else { "no" };
        text.push_str(&format!("| {} | {} | {} | {nullable} |\n", c.position, cell(&c.name), cell(&c.data_type)));
    }
    text
}

impl BackstageFormat {
    fn warehouse_entity(&self, catalog: &WarehouseCatalog, owner: &str) -> Value {
        let kind = catalog.warehouse.kind();
        let name = catalog.warehouse.name();
        let mut annotations = place_annotations(catalog);
        if let Some(arn) = &catalog.arn {
            annotations.insert(AWS_ARN.into(), json!(arn));
        }
        let metadata = json!({
            "name": entity_name(name, &[&catalog.account_id, &catalog.region, kind, name]),
            "title": name,
            "description": format!("Amazon Redshift {kind} {name} in account {}, {}", catalog.account_id, catalog.region),
            "annotations": annotations,
            "tags": ["redshift"],
        });
        json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Resource",
            "metadata": self.metadata(catalog, metadata),
            "spec": self.spec(&format!("redshift-{kind}"), owner, Vec::new()),
        })
    }

    fn dataset_entity(&self, catalog: &WarehouseCatalog, database: &str, d: &Dataset, pending: &Pending) -> Value {
        let (account, region, warehouse) = (&catalog.account_id, &catalog.region, &catalog.warehouse);
        let full = manifest::dataset_name(database, &d.schema, &d.name);
        let identity = [account.as_str(), region, warehouse.kind(), warehouse.name(), database, &d.schema, &d.name];
        let mut annotations = place_annotations(catalog);
        for (key, value) in [("database", database), ("schema", &d.schema), ("table", &d.name), ("dataset", &full)] {
            annotations.insert(format!("{ANNOTATION}/{key}"), json!(value));
        }
        let manifest_key = self.layout.dataset_key(account, region, warehouse, database, &d.schema, &d.name);
        annotations.insert(format!("{ANNOTATION}/manifest-key"), json!(manifest_key));
        let kind = serde_json::to_value(d.kind).expect("a kind serialises");
        let kind = kind.as_str().expect("a kind is a string").replace('_', "-");
        let metadata = json!({
            "name": entity_name(&full, &identity),
            "title": full,
            "description": description(d),
            "annotations": annotations,
            "tags": ["redshift", kind],
        });
        json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Resource",
            "metadata": self.metadata(catalog, metadata),
            "spec": self.spec(&format!("redshift-{kind}"), &pending.owner, self.depends_on(catalog, d, &pending.parent)),
        })
    }
}

impl BackstageFormat {
    /// A database's files are `{base}.yaml`, `{base}-2.yaml`...
    fn database_file_base(&self, catalog: &WarehouseCatalog, database: &str) -> String {
        let w = &catalog.warehouse;
        entity_name(database, &[&catalog.account_id, &catalog.region, w.kind(), w.name(), database])
    }
}

impl Format for BackstageFormat {
    const NAME: &'static str = "backstage";
    const CONTENT_TYPE: &'static str = "application/yaml";

    fn index_root(&self) -> &str {
        &self.index_root
    }

    fn warehouse_prefix(&self, account: &str, region: &str, warehouse: &WarehouseId) -> String {
        let name = entity_name(warehouse.name(), &[account, region, warehouse.kind(), warehouse.name()]);
        format!("{}{account}/{region}/{}/{name}/", self.root, warehouse.kind())
    }

    type Pending = Pending;

    fn warehouse_files(&self, catalog: &WarehouseCatalog, notes: &mut Vec<String>, pending: &mut Pending) -> Vec<File> {
        let prefix = self.warehouse_prefix(&catalog.account_id, &catalog.region, &catalog.warehouse);
        pending.owner = self.owner(catalog, notes);
        let parent = self.warehouse_entity(catalog, &pending.owner);
        pending.parent = parent["metadata"]["name"].as_str().expect("a name").to_string();
        let key = format!("{prefix}warehouse.yaml");
        vec![File::new("", None, None, "warehouse".into(), key, document(&parent).into_bytes())]
    }

    /// A database's datasets wait until its read ends: its files group them, sorted. A database
    /// with parts not confirmed keeps its previous files whole; a failed one writes nothing.
    fn files(&self, catalog: &WarehouseCatalog, event: &ReadEvent, pending: &mut Pending) -> Vec<File> {
        let Some((db, datasets)) = pending.databases.hold(event, |_| true) else { return Vec::new() };
        let prefix = self.warehouse_prefix(&catalog.account_id, &catalog.region, &catalog.warehouse);
        let base = self.database_file_base(catalog, &db.name);
        let mut files = Vec::new();
        for (i, chunk) in datasets.chunks(ENTITIES_PER_FILE).enumerate() {
            let file = if i == 0 { format!("{base}.yaml") } else { format!("{base}-{}.yaml", i + 1) };
            let text: String =
                chunk.iter().map(|d| document(&self.dataset_entity(catalog, &db.name, d, pending))).collect();
            files.push(File::new(&db.name, None, None, file.clone(), format!("{prefix}{file}"), text.into_bytes()));
        }
        files
    }

    fn keeps(&self, database: &DatabaseCatalog, _entry: &IndexEntry) -> bool {
        !database.unconfirmed.is_nothing()
    }

    fn unseen_entry(&self, catalog: &WarehouseCatalog, relative: &str, key: &str) -> Option<IndexEntry> {
        let db = unseen_databases(catalog).find(|db| {
            let base = self.database_file_base(catalog, db);
            relative.strip_prefix(&base).is_some_and(|rest| rest.starts_with(['.', '-']))
        })?;
        Some(IndexEntry::unseen_database_file(db, relative, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_yaml_refuses_are_escaped_and_mean_the_same() {
        let entity = json!({"metadata": {"description": "a\u{85}b\u{7f}c é\u{feff}\u{fffe}\u{ffff}"}});
        let doc = document(&entity);
        assert!(doc.contains("a\\u0085b\\u007fc é\\ufeff\\ufffe\\uffff"), "{doc}");
        let back: Value = serde_json::from_str(doc.trim_start_matches("---\n")).unwrap();
        assert_eq!(back, entity);
    }

    /// Property: for names Redshift allows (unicode, quotes, case, 127 bytes), entity names
    /// follow Backstage's rule, stay within 63 characters and never meet case-insensitively.
    #[test]
    fn entity_names_are_valid_and_unique() {
        let rule = regex::Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").unwrap();
        let pieces = ["Orders", "orders", "\"", "'", "日本", "🦀", " ", ".", "-", "_", "a", "Z9", "ü"];
        let mut rng = fastrand::Rng::with_seed(11);
        let mut seen = std::collections::HashMap::new();
        for _ in 0..20_000 {
            let name: String = (0..rng.usize(1..40)).map(|_| pieces[rng.usize(..pieces.len())]).collect();
            let name: String = name.chars().take(127).collect();
            let e = entity_name(&name, &["111111111111", "us-east-1", "cluster", "c", "dev", "s", &name]);
            assert!(rule.is_match(&e) && e.len() <= 63, "{e:?} from {name:?}");
            if let Some(other) = seen.insert(e.to_lowercase(), name.clone()) {
                assert_eq!(other, name, "{e} twice");
            }
        }
    }
}
