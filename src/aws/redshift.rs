//! The Redshift control plane: DescribeClusters.

use aws_config::SdkConfig;
use aws_sdk_redshift::types::Cluster as SdkCluster;

use super::aws_error;
use crate::error::{AwsError, ErrorKind};
use crate::plan::{Cluster, ClusterDirectory, Endpoint};

pub struct RedshiftDirectory {
    client: aws_sdk_redshift::Client,
}

impl RedshiftDirectory {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_redshift::Client::new(config),
        }
    }
}

impl ClusterDirectory for RedshiftDirectory {
    async fn list_clusters(&self) -> Result<Vec<Cluster>, AwsError> {
        let mut pages = self
            .client
            .describe_clusters()
            .max_records(100)
            .into_paginator()
            .send();
        let mut clusters = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("redshift:DescribeClusters", e))?;
            clusters.extend(page.clusters().iter().map(to_cluster));
        }
        Ok(clusters)
    }

    async fn find_cluster(&self, identifier: &str) -> Result<Option<Cluster>, AwsError> {
        match self
            .client
            .describe_clusters()
            .cluster_identifier(identifier)
            .send()
            .await
        {
            Ok(out) => Ok(out.clusters().first().map(to_cluster)),
            Err(e) => match aws_error("redshift:DescribeClusters", e) {
                e if e.kind == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }
}

fn to_cluster(c: &SdkCluster) -> Cluster {
    Cluster {
        cluster_identifier: c.cluster_identifier().unwrap_or_default().to_string(),
        cluster_status: c.cluster_status().unwrap_or_default().to_string(),
        availability: c.cluster_availability_status().map(str::to_string),
        node_type: c.node_type().map(str::to_string),
        endpoint: c.endpoint().and_then(|e| {
            Some(Endpoint {
                address: e.address()?.to_string(),
                port: e.port()?,
            })
        }),
        database_name: c.db_name().map(str::to_string),
        namespace_arn: c.cluster_namespace_arn().map(str::to_string),
        tags: c
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
    }
}
