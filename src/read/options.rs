//! What a warehouse's read is asked for: the config's filters, bounds and fetch settings.

use std::time::{Duration, Instant};

use regex::Regex;

use super::statement::{Budget, ReadError};
use crate::config::{Config, NamePattern, Pattern};
use crate::ports::Fetch;

/// An anchored include/exclude filter over names.
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    /// Include patterns that are plain names, so a missing one can be reported.
    pub literals: Vec<String>,
}

impl NameFilter {
    pub fn new(pattern: &Pattern) -> Self {
        let anchored = |ps: &[NamePattern]| ps.iter().map(|p| p.anchored.clone()).collect();
        Self {
            include: anchored(&pattern.include),
            exclude: anchored(&pattern.exclude),
            literals: pattern.include.iter().filter_map(NamePattern::literal).map(str::to_string).collect(),
        }
    }

    pub fn allows(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(name)))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub pull_comments: bool,
    pub include_system_schemas: bool,
    pub databases: NameFilter,
    pub schemas: NameFilter,
    pub tables: NameFilter,
    pub statement_timeout: Duration,
    pub databases_per_warehouse: usize,
    /// No statement starts after this; running ones are cancelled at it.
    pub cutoff: Option<Instant>,
    pub fetch: Fetch,
}

impl ReadOptions {
    pub fn from_config(config: &Config) -> Self {
        Self {
            pull_comments: config.pull_redshift_comments,
            include_system_schemas: config.include_system_schemas,
            databases: NameFilter::new(&config.filters.databases),
            schemas: NameFilter::new(&config.filters.schemas),
            tables: NameFilter::new(&config.filters.tables),
            statement_timeout: Duration::from_secs(config.limits.statement_timeout_seconds),
            databases_per_warehouse: config.limits.databases_per_warehouse,
            cutoff: None,
            fetch: config.data_api.fetch(),
        }
    }

    /// The bounds of a statement about to start; none once the cutoff has passed.
    pub(super) fn budget(&self) -> Result<Budget, ReadError> {
        match self.cutoff {
            Some(cutoff) if Instant::now() >= cutoff => Err(ReadError::Deadline),
            cutoff => Ok(Budget { timeout: self.statement_timeout, cutoff, fetch: self.fetch }),
        }
    }
}
