//! The control API the tests and the demo use, over the emulator's state. Everything belongs to an
//! AWS account, as on AWS: a request acts in the account of its access key (`accounts.rs`), and
//! sees only that account's clusters, workgroups, knobs and counters.
//!
//! - `GET  /_emulator/health`
//! - `POST /_emulator/warehouses`
//!   `{"accountId": "111111111111", "target": "sales", "databases": [{"name": "dev", "sql": "..."}]}`
//!   replaces every database of a cluster or workgroup of that account with fresh ones set up by
//!   fixture SQL;
//! - `PUT  /_emulator/accounts/{account}/targets/{target}/knobs` sets the knobs of [`Knobs`] for
//!   that target; Serverless calls count and take knobs under target `serverless:{region}`;
//! - `GET  /_emulator/accounts/{account}/targets/{target}/counters` returns calls per operation
//!   for that target, `<Operation>Bytes`, the bytes of the response bodies sent for those calls
//!   (errors included), `maxRunningStatements`, the most statements it ran at once, and, by
//!   error code, long polls it refused;
//! - `POST /_emulator/workgroups` registers a Serverless workgroup of an account (see `serverless.rs`).

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::knobs::Knobs;
use crate::state::{key, Emulator};
use crate::wire::{text_reply, Reply};
use crate::workgroup::Workgroup;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WarehouseSpec {
    account_id: String,
    target: String,
    databases: Vec<DatabaseSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSpec {
    name: String,
    #[serde(default)]
    sql: String,
}

impl Emulator {
    pub async fn control(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let parts: Vec<&str> = path.split('/').collect();
        let outcome = match (method, parts.as_slice()) {
            ("GET", ["health"]) => Ok("\"ok\"".to_string()),
            ("POST", ["warehouses"]) => self.create_warehouse(body).await,
            ("PUT", ["accounts", account, "targets", target, "knobs"]) => self.set_knobs(account, target, body),
            ("GET", ["accounts", account, "targets", target, "counters"]) => Ok(self.counters(account, target)),
            ("POST", ["workgroups"]) => self.register_workgroup(body),
            _ => {
                let error = format!("no control route {method} /_emulator/{path}");
                return text_reply(StatusCode::NOT_FOUND, json!({ "error": error }).to_string());
            }
        };
        match outcome {
            Ok(text) => text_reply(StatusCode::OK, text),
            Err(e) => text_reply(StatusCode::BAD_REQUEST, json!({ "error": e }).to_string()),
        }
    }

    async fn create_warehouse(&self, body: &[u8]) -> Result<String, String> {
        let spec: WarehouseSpec = serde_json::from_slice(body).map_err(|e| format!("warehouse spec: {e}"))?;
        let databases: Vec<(String, String)> = spec.databases.into_iter().map(|d| (d.name, d.sql)).collect();
        self.pg.create_warehouse(&spec.account_id, &spec.target, &databases).await?;
        Ok(json!({"target": spec.target}).to_string())
    }

    fn set_knobs(&self, account: &str, target: &str, body: &[u8]) -> Result<String, String> {
        let knobs: Knobs = serde_json::from_slice(body).map_err(|e| format!("knobs: {e}"))?;
        if let Some(e) =
            [&knobs.fail_sql, &knobs.slow_sql].into_iter().flatten().find_map(|p| regex::Regex::new(p).err())
        {
            return Err(format!("knob regex: {e}"));
        }
        self.targets.lock().unwrap().entry(key(account, target)).or_default().knobs = knobs;
        Ok("{}".into())
    }

    fn counters(&self, account: &str, target: &str) -> String {
        let mut counters = BTreeMap::new();
        if let Some(t) = self.targets.lock().unwrap().get(&key(account, target)) {
            counters = t.counters.clone();
            counters.insert("maxRunningStatements".to_string(), t.running.max());
        }
        serde_json::to_string(&counters).unwrap()
    }

    fn register_workgroup(&self, body: &[u8]) -> Result<String, String> {
        let w: Workgroup = serde_json::from_slice(body).map_err(|e| format!("workgroup: {e}"))?;
        let mut all = self.workgroups.lock().unwrap();
        all.retain(|x| (&x.account_id, &x.region, &x.workgroup_name) != (&w.account_id, &w.region, &w.workgroup_name));
        all.push(w);
        Ok("{}".into())
    }
}
