//! The Redshift control plane: DescribeClusters, and Redshift Serverless workgroups.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_redshift::types::Cluster as SdkCluster;
use aws_sdk_redshiftserverless::types::Workgroup as SdkWorkgroup;

use super::sdk_error::aws_error;
use crate::catalog::{Cluster, Endpoint, Workgroup};
use crate::error::{AwsError, ErrorKind};
use crate::ports::WarehouseDirectory;

pub struct RedshiftDirectory {
    redshift: aws_sdk_redshift::Client,
    serverless: aws_sdk_redshiftserverless::Client,
}

impl RedshiftDirectory {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            redshift: aws_sdk_redshift::Client::new(config),
            serverless: aws_sdk_redshiftserverless::Client::new(config),
        }
    }

    /// Namespace name → (default database, ARN), all pages.
    async fn namespaces(&self) -> Result<HashMap<String, (Option<String>, Option<String>)>, AwsError> {
        let mut pages = self.serverless.list_namespaces().into_paginator().send();
        let mut namespaces = HashMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("redshift-serverless:ListNamespaces", e))?;
            for n in page.namespaces() {
                if let Some(name) = n.namespace_name() {
                    namespaces.insert(
                        name.to_string(),
                        (n.db_name().map(str::to_string), n.namespace_arn().map(str::to_string)),
                    );
                }
            }
        }
        Ok(namespaces)
    }
}

fn not_found_is_none<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl WarehouseDirectory for RedshiftDirectory {
    async fn list_clusters(&self) -> Result<Vec<Cluster>, AwsError> {
        let mut pages = self.redshift.describe_clusters().max_records(100).into_paginator().send();
        let mut clusters = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("redshift:DescribeClusters", e))?;
            clusters.extend(page.clusters().iter().map(to_cluster));
        }
        Ok(clusters)
    }

    async fn find_cluster(&self, identifier: &str) -> Result<Option<Cluster>, AwsError> {
        let out = self.redshift.describe_clusters().cluster_identifier(identifier).send().await;
        let out = not_found_is_none(out.map_err(|e| aws_error("redshift:DescribeClusters", e)))?;
        Ok(out.and_then(|o| o.clusters().first().map(to_cluster)))
    }

    async fn list_workgroups(&self) -> Result<Vec<Workgroup>, AwsError> {
        let mut pages = self.serverless.list_workgroups().into_paginator().send();
        let mut workgroups = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("redshift-serverless:ListWorkgroups", e))?;
            workgroups.extend(page.workgroups().iter().map(to_workgroup));
        }
        if !workgroups.is_empty() {
            let namespaces = self.namespaces().await?;
            for w in &mut workgroups {
                if let Some((db, arn)) = namespaces.get(&w.namespace_name) {
                    w.database_name = db.clone();
                    w.namespace_arn = arn.clone();
                }
            }
        }
        Ok(workgroups)
    }

    async fn find_workgroup(&self, name: &str) -> Result<Option<Workgroup>, AwsError> {
        let out = self.serverless.get_workgroup().workgroup_name(name).send().await;
        let Some(out) = not_found_is_none(out.map_err(|e| aws_error("redshift-serverless:GetWorkgroup", e)))? else {
            return Ok(None);
        };
        let Some(mut workgroup) = out.workgroup().map(to_workgroup) else {
            return Ok(None);
        };
        let namespace = self.serverless.get_namespace().namespace_name(&workgroup.namespace_name).send().await;
        if let Some(ns) = not_found_is_none(namespace.map_err(|e| aws_error("redshift-serverless:GetNamespace", e)))? {
            workgroup.database_name = ns.namespace().and_then(|n| n.db_name()).map(str::to_string);
            workgroup.namespace_arn = ns.namespace().and_then(|n| n.namespace_arn()).map(str::to_string);
        }
        Ok(Some(workgroup))
    }
}

fn to_cluster(c: &SdkCluster) -> Cluster {
    Cluster {
        cluster_identifier: c.cluster_identifier().unwrap_or_default().to_string(),
        cluster_status: c.cluster_status().unwrap_or_default().to_string(),
        availability: c.cluster_availability_status().map(str::to_string),
        node_type: c.node_type().map(str::to_string),
        endpoint: c.endpoint().and_then(|e| Some(Endpoint { address: e.address()?.to_string(), port: e.port()? })),
        database_name: c.db_name().map(str::to_string),
        namespace_arn: c.cluster_namespace_arn().map(str::to_string),
        tags: c
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect(),
    }
}

fn to_workgroup(w: &SdkWorkgroup) -> Workgroup {
    Workgroup {
        workgroup_name: w.workgroup_name().unwrap_or_default().to_string(),
        status: w.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        namespace_name: w.namespace_name().unwrap_or_default().to_string(),
        database_name: None,
        endpoint: w.endpoint().and_then(|e| Some(Endpoint { address: e.address()?.to_string(), port: e.port()? })),
        workgroup_arn: w.workgroup_arn().map(str::to_string),
        namespace_arn: None,
    }
}
