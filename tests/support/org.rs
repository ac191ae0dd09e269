//! An organisation of one account in moto with warehouses in the emulator, for the publish
//! and fault tests.

use std::collections::BTreeMap;

use redshift_registry::event::RunRequest;
use redshift_registry::publish::WarehouseIndex;
use redshift_registry::report::Report;
use serde_json::{json, Value};

use super::*;

pub const READER: &str = "IAMR:DataRegistryRedshiftReader";

pub fn fixture(tables: &[&str]) -> String {
    let mut sql = String::from(
        r#"DO $$ BEGIN CREATE ROLE "IAMR:DataRegistryRedshiftReader";
           EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
           CREATE SCHEMA sales;"#,
    );
    for t in tables {
        sql.push_str(&format!("CREATE TABLE sales.{t} (id integer NOT NULL, name varchar(64));"));
    }
    sql.push_str(&format!(
        r#"CREATE VIEW sales.v AS SELECT 1 AS one;
           GRANT USAGE ON SCHEMA sales TO "{READER}"; GRANT SELECT ON ALL TABLES IN SCHEMA sales TO "{READER}";"#
    ));
    sql
}

pub struct Org {
    pub moto: String,
    pub account: String,
    pub bucket: String,
}

pub async fn org(test: &str) -> Org {
    let moto = moto_url();
    let org = Org { account: account_id(test, 1), bucket: bucket_name(test), moto };
    create_bucket(&org.moto, &org.bucket).await;
    org
}

impl Org {
    pub async fn cluster(&self, id: &str, databases: &[(&str, &str)]) {
        create_cluster(
            &self.moto,
            &self.account,
            "us-east-1",
            ClusterSeed {
                id,
                node_type: "ra3.xlplus",
                db_name: databases[0].0,
                tags: &[("team", "data"), ("env", "prod")],
            },
        )
        .await;
        create_warehouse(&self.account, id, databases).await;
    }

    pub fn config(&self, extra: Value) -> redshift_registry::config::Config {
        config(self.config_json(extra))
    }

    /// The config as the function reads it: this organisation's account and bucket, plus `extra`.
    pub fn config_json(&self, extra: Value) -> Value {
        let mut c = json!({
            "output": {"bucket": self.bucket, "prefix": "registry/"},
            "roleName": "Reader",
            "sources": [{"accountId": self.account, "regions": ["us-east-1"]}]
        });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    }

    pub async fn run(&self, endpoint: &str, request: &RunRequest) -> Report {
        run_against(endpoint, &self.config(json!({"pullRedshiftComments": true})), request).await
    }

    /// What Backstage made of the bucket under `prefix`: `{locations, entities, invalid}`, from
    /// the real `AwsS3EntityProvider`, S3 URL reader, `parseEntityYaml` and catalog-model
    /// validation (tests/backstage/harness.mjs, its packages pinned in its package-lock.json).
    pub fn backstage_reads(&self, prefix: &str) -> Value {
        let out = std::process::Command::new("node")
            .arg(repo_root().join("tests/backstage/harness.mjs"))
            .env("MOTO_URL", &self.moto)
            .env("BUCKET", &self.bucket)
            .env("PREFIX", prefix)
            .output()
            .expect("node runs (scripts/install.sh installs the harness)");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("harness output: {e}\n{}", String::from_utf8_lossy(&out.stderr)))
    }

    pub async fn objects(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        snapshot(&self.moto, &self.bucket, prefix).await
    }

    pub async fn index(&self, cluster: &str) -> WarehouseIndex {
        let key = format!("registry/index/{}/us-east-1/cluster/{cluster}.json", self.account);
        serde_json::from_slice(&get_object(&self.moto, &self.bucket, &key).await).expect("an index")
    }
}
