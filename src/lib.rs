//! redshift-registry: keeps a data registry in step with every Amazon Redshift warehouse of an
//! organisation. The modules follow the data's path:
//!
//! - [`event`], [`config`]: what to do, from the invocation payload and the configuration;
//! - [`plan`]: accounts → regions → clusters, with discovery over the control plane;
//! - [`read`]: every dataset's metadata through the Data API, into the [`catalog`] model;
//! - [`manifest`], [`publish`]: one manifest per dataset, one atomic snapshot per warehouse in S3;
//! - [`report`]: what was found, and what was not and why;
//! - [`run`]: the invocation end to end over small ports, with [`aws`] as their adapters.

pub mod aws;
pub mod backstage;
pub mod catalog;
pub mod config;
pub mod error;
pub mod event;
pub mod manifest;
pub mod metrics;
pub mod outputs;
pub mod plan;
pub mod ports;
pub mod publish;
pub mod read;
pub mod report;
pub mod run;
