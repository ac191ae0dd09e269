//! The Redshift Serverless calls redshift-registry makes (`X-Amz-Target: RedshiftServerless.<Op>`).
//! moto has no Serverless backend, so workgroups are registered here through the control API,
//! each in an account; a caller sees its own account's workgroups in the region it signed for.

use serde_json::{json, Value};

use crate::state::Emulator;
use crate::wire::AwsError;
use crate::workgroup::Workgroup;

impl Emulator {
    pub async fn serverless(&self, op: &str, account: &str, region: &str, input: &Value) -> Result<Value, AwsError> {
        self.enter(account, &format!("serverless:{region}"), op).await?;
        let in_region: Vec<Workgroup> = self
            .workgroups
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.account_id == account && w.region == region)
            .cloned()
            .collect();
        let name = |key: &str| input.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let page = |items: Vec<Value>, key: &str| {
            let offset: usize =
                input.get("nextToken").and_then(Value::as_str).and_then(|t| t.parse().ok()).unwrap_or(0);
            let max = input.get("maxResults").and_then(Value::as_u64).unwrap_or(100) as usize;
            let end = (offset + max.max(1)).min(items.len());
            let mut out = json!({ key: items.get(offset..end).unwrap_or_default() });
            if end < items.len() {
                out["nextToken"] = json!(end.to_string());
            }
            out
        };
        match op {
            "ListWorkgroups" => Ok(page(in_region.iter().map(Workgroup::to_json).collect(), "workgroups")),
            "GetWorkgroup" => {
                let wanted = name("workgroupName");
                in_region
                    .iter()
                    .find(|w| w.workgroup_name == wanted)
                    .map(|w| json!({"workgroup": w.to_json()}))
                    .ok_or_else(|| AwsError::not_found(format!("Workgroup {wanted} not found")))
            }
            "ListNamespaces" => {
                let mut seen = Vec::new();
                let namespaces = in_region
                    .iter()
                    .filter(|w| {
                        let fresh = !seen.contains(&w.namespace_name);
                        seen.push(w.namespace_name.clone());
                        fresh
                    })
                    .map(Workgroup::namespace_json)
                    .collect();
                Ok(page(namespaces, "namespaces"))
            }
            "GetNamespace" => {
                let wanted = name("namespaceName");
                in_region
                    .iter()
                    .find(|w| w.namespace_name == wanted)
                    .map(|w| json!({"namespace": w.namespace_json()}))
                    .ok_or_else(|| AwsError::not_found(format!("Namespace {wanted} not found")))
            }
            _ => Err(AwsError {
                status: 400,
                code: "UnknownOperationException",
                message: format!("RedshiftServerless.{op}"),
            }),
        }
    }
}
