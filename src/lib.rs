//! redshift-registry: keeps a data registry in step with every Amazon Redshift warehouse of an
//! organisation. The modules follow the data's path:
//!
//! - [`invoke`], [`event`], [`config`]: what to do, from the invocation payload and the configuration;
//! - [`plan`]: accounts → regions → clusters, with discovery over the control plane; [`shard`]: the
//!   same plan split into one shard per account and region, over a queue;
//! - [`read`]: every dataset's metadata through the Data API, into the [`catalog`] model;
//! - `manifest`, `backstage`, `openlineage`: the output formats; [`publish`]: the commit protocol
//!   they share (one atomic snapshot per warehouse in S3); [`outputs`]: which of them a run
//!   publishes to;
//! - [`report`], [`metrics`]: what was found, and what was not and why;
//! - [`run`]: the invocation end to end, each warehouse read, published and reported in one trip,
//!   over the traits of [`ports`], with [`aws`] as their adapters.

#![warn(unreachable_pub)]

pub mod aws;
mod backstage;
pub mod catalog;
pub mod config;
pub mod environment;
pub mod error;
pub mod event;
pub mod invoke;
pub mod layout;
mod manifest;
pub mod metrics;
mod names;
mod openlineage;
pub mod outcome;
pub mod outputs;
pub mod plan;
pub mod ports;
pub mod publish;
pub mod read;
pub mod report;
pub mod run;
pub mod run_id;
pub mod shard;
#[cfg(test)]
mod testing;
