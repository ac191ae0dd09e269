//! The emulator's state: every account's clusters and workgroups, their knobs, counters and
//! statements, and how a call is counted and delayed. The handlers (`control`, `data_api`,
//! `serverless`) answer over it; `http` routes to them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use hyper::body::Body;

use crate::accounts::Accounts;
use crate::knobs::{Knobs, Running, TargetState};
use crate::pg::Postgres;
use crate::statements::Statements;
use crate::wire::{AwsError, Reply};
use crate::workgroup::Workgroup;

pub(crate) fn key(account: &str, target: &str) -> (String, String) {
    (account.to_string(), target.to_string())
}

/// A counted call, what [`Emulator::enter`] counted it as.
struct Counted {
    target: (String, String),
    operation: String,
}

tokio::task_local! {
    /// The call the current request was counted as, so its response's bytes count there too.
    static COUNTED: RefCell<Option<Counted>>;
}

pub struct Emulator {
    pub pg: Postgres,
    pub accounts: Accounts,
    pub statements: Statements,
    /// By (account, cluster or workgroup).
    pub targets: Mutex<HashMap<(String, String), TargetState>>,
    pub workgroups: Mutex<Vec<Workgroup>>,
}

impl Emulator {
    pub fn new(pg: Postgres, accounts: Accounts) -> Self {
        Self {
            pg,
            accounts,
            statements: Statements::default(),
            targets: Mutex::new(HashMap::new()),
            workgroups: Mutex::new(Vec::new()),
        }
    }

    pub fn running(&self, account: &str, target: &str) -> Arc<Running> {
        self.targets.lock().unwrap().entry(key(account, target)).or_default().running.clone()
    }

    /// Counts the call, then applies the target's latency and call faults.
    pub async fn enter(&self, account: &str, target: &str, operation: &str) -> Result<Knobs, AwsError> {
        let (knobs, active_exceeded) = {
            let mut targets = self.targets.lock().unwrap();
            let t = targets.entry(key(account, target)).or_default();
            *t.counters.entry(operation.to_string()).or_default() += 1;
            // Outside `count_bytes` (no request) there is nothing to remember.
            let _ = COUNTED.try_with(|c| {
                *c.borrow_mut() = Some(Counted { target: key(account, target), operation: operation.to_string() })
            });
            let starts_statement = matches!(operation, "ExecuteStatement" | "BatchExecuteStatement");
            let exceeded = starts_statement && t.knobs.active_statements_exceeded > 0;
            if exceeded {
                t.knobs.active_statements_exceeded -= 1;
            }
            let loses_connection = starts_statement && !exceeded && t.knobs.connections_lost > 0;
            t.knobs.connections_lost -= u32::from(loses_connection);
            let knobs = Knobs { connections_lost: u32::from(loses_connection), ..t.knobs.clone() };
            (knobs, exceeded)
        };
        if knobs.latency_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(knobs.latency_ms)).await;
        }
        if knobs.access_denied {
            return Err(AwsError {
                status: 400,
                code: "AccessDeniedException",
                message: format!("User is not authorized to access {target}: not authorized to perform redshift:GetClusterCredentialsWithIAM"),
            });
        }
        if knobs.throttle_rate > 0.0 && fastrand::f64() < knobs.throttle_rate {
            return Err(AwsError { status: 400, code: "ThrottlingException", message: "Rate exceeded".into() });
        }
        if active_exceeded {
            return Err(AwsError {
                status: 400,
                code: "ActiveStatementsExceededException",
                message: "Active statements exceeded the allowed quota (200).".into(),
            });
        }
        Ok(knobs)
    }

    /// Counts a refused long poll under its error code, so that tests see it was refused.
    pub fn count(&self, account: &str, target: &str, code: &str) {
        let mut targets = self.targets.lock().unwrap();
        *targets.entry(key(account, target)).or_default().counters.entry(code.to_string()).or_default() += 1;
    }

    /// Whether this long poll is one of the target's `long_polls_left_waiting`.
    pub fn leaves_long_poll_waiting(&self, account: &str, target: &str) -> bool {
        let mut targets = self.targets.lock().unwrap();
        let knobs = &mut targets.entry(key(account, target)).or_default().knobs;
        let left = knobs.long_polls_left_waiting > 0;
        knobs.long_polls_left_waiting = knobs.long_polls_left_waiting.saturating_sub(1);
        left
    }

    /// Answers one AWS call, then adds the bytes of its response body to `<Operation>Bytes` of the
    /// target it was counted against (calls refused before that, such as an unknown statement id,
    /// count nowhere).
    pub async fn count_bytes(&self, call: impl Future<Output = Reply>) -> Reply {
        let (reply, counted) = COUNTED
            .scope(RefCell::new(None), async {
                let reply = call.await;
                (reply, COUNTED.with(|c| c.borrow_mut().take()))
            })
            .await;
        if let Some(Counted { target, operation }) = counted {
            let bytes = reply.body().size_hint().exact().unwrap_or_default();
            let mut targets = self.targets.lock().unwrap();
            *targets.entry(target).or_default().counters.entry(format!("{operation}Bytes")).or_default() += bytes;
        }
        reply
    }
}
