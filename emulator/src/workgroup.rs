//! A Redshift Serverless workgroup as the control API registers it, and as the Serverless calls
//! describe it and its namespace. A leaf.

use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workgroup {
    pub region: String,
    pub workgroup_name: String,
    pub namespace_name: String,
    #[serde(default = "default_db")]
    pub db_name: String,
    #[serde(default = "available")]
    pub status: String,
    pub account_id: String,
}

fn default_db() -> String {
    "dev".into()
}
fn available() -> String {
    "AVAILABLE".into()
}

impl Workgroup {
    pub fn to_json(&self) -> Value {
        json!({
            "workgroupName": self.workgroup_name,
            "workgroupId": format!("wg-{}", self.workgroup_name),
            "workgroupArn": format!("arn:aws:redshift-serverless:{}:{}:workgroup/wg-{}", self.region, self.account_id, self.workgroup_name),
            "namespaceName": self.namespace_name,
            "status": self.status,
            "baseCapacity": 8,
            "endpoint": {"address": format!("{}.{}.{}.redshift-serverless.amazonaws.com", self.workgroup_name, self.account_id, self.region), "port": 5439},
        })
    }

    pub fn namespace_json(&self) -> Value {
        json!({
            "namespaceName": self.namespace_name,
            "namespaceId": format!("ns-{}", self.namespace_name),
            "namespaceArn": format!("arn:aws:redshift-serverless:{}:{}:namespace/ns-{}", self.region, self.account_id, self.namespace_name),
            "dbName": self.db_name,
            "status": "AVAILABLE",
        })
    }
}
