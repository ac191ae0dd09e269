//! Statements: accepted at once, run in the background, described, paged, cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regex::Regex;

use crate::control::{Knobs, Running};
use crate::pg::{Postgres, ResultSet};

pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[derive(Debug, Clone)]
pub struct SubStatement {
    pub sql: String,
    pub status: &'static str,
    pub error: Option<String>,
    pub result: ResultSet,
    pub updated_at: f64,
}

#[derive(Debug)]
pub struct Statement {
    pub id: String,
    pub target: String,
    pub is_workgroup: bool,
    pub database: String,
    pub user: String,
    pub is_batch: bool,
    pub created_at: f64,
    pub status: &'static str,
    pub error: Option<String>,
    pub updated_at: f64,
    pub subs: Vec<SubStatement>,
    pub page_size: usize,
    task: Option<tokio::task::AbortHandle>,
}

#[derive(Default)]
pub struct Statements {
    all: Mutex<HashMap<String, Arc<Mutex<Statement>>>>,
}

pub struct NewStatement {
    pub target: String,
    pub is_workgroup: bool,
    pub database: String,
    pub user: String,
    pub sqls: Vec<String>,
    pub params: Vec<(String, String)>,
    pub is_batch: bool,
}

impl Statements {
    pub fn get(&self, id: &str) -> Option<Arc<Mutex<Statement>>> {
        self.all.lock().unwrap().get(id).cloned()
    }

    /// Accepts a statement and runs it in the background.
    pub fn start(&self, pg: &Postgres, knobs: &Knobs, running: Arc<Running>, new: NewStatement) -> String {
        let id = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            fastrand::u32(..),
            fastrand::u16(..),
            fastrand::u16(..),
            fastrand::u16(..),
            fastrand::u64(..) & 0xffff_ffff_ffff
        );
        let created = now();
        let statement = Arc::new(Mutex::new(Statement {
            id: id.clone(),
            target: new.target.clone(),
            is_workgroup: new.is_workgroup,
            database: new.database.clone(),
            user: new.user.clone(),
            is_batch: new.is_batch,
            created_at: created,
            status: "SUBMITTED",
            error: None,
            updated_at: created,
            subs: new
                .sqls
                .iter()
                .map(|sql| SubStatement {
                    sql: sql.clone(),
                    status: "SUBMITTED",
                    error: None,
                    result: ResultSet::default(),
                    updated_at: created,
                })
                .collect(),
            page_size: knobs.page_size.unwrap_or(1000).max(1),
            task: None,
        }));
        self.all.lock().unwrap().insert(id.clone(), statement.clone());
        let task = tokio::spawn(execute(pg.clone(), knobs.clone(), running, statement.clone(), new));
        statement.lock().unwrap().task = Some(task.abort_handle());
        id
    }

    /// Cancels a running statement; false when it already ended.
    pub fn cancel(&self, statement: &Arc<Mutex<Statement>>) -> bool {
        let mut s = statement.lock().unwrap();
        if matches!(s.status, "FINISHED" | "FAILED" | "ABORTED") {
            return false;
        }
        if let Some(task) = s.task.take() {
            task.abort();
        }
        s.status = "ABORTED";
        s.updated_at = now();
        for sub in &mut s.subs {
            if !matches!(sub.status, "FINISHED" | "FAILED") {
                sub.status = "ABORTED";
            }
        }
        true
    }
}

async fn execute(
    pg: Postgres,
    knobs: Knobs,
    running: Arc<Running>,
    statement: Arc<Mutex<Statement>>,
    new: NewStatement,
) {
    running.start();
    // Ends the count however the task ends, cancellation included.
    struct Ended(Arc<Running>);
    impl Drop for Ended {
        fn drop(&mut self) {
            self.0.end();
        }
    }
    let _ended = Ended(running);
    set_status(&statement, "STARTED");
    let mut wait = knobs.statement_ms;
    if let Some(pattern) = &knobs.slow_sql {
        let re = Regex::new(pattern).expect("validated when set");
        if new.sqls.iter().any(|s| re.is_match(s)) {
            wait += knobs.slow_sql_ms;
        }
    }
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let injected = injected_failure(&knobs, &new);
    let outcome = match injected {
        Some(failure) => Err(failure),
        None => pg.run(&new.target, &new.database, &new.user, &new.sqls, &new.params).await,
    };
    let mut s = statement.lock().unwrap();
    if s.status == "ABORTED" {
        return;
    }
    let t = now();
    s.updated_at = t;
    match outcome {
        Ok(results) => {
            s.status = "FINISHED";
            for (sub, result) in s.subs.iter_mut().zip(results) {
                sub.status = "FINISHED";
                sub.result = result;
                sub.updated_at = t;
            }
        }
        Err((index, message)) => {
            s.status = "FAILED";
            s.error = Some(message.clone());
            for (i, sub) in s.subs.iter_mut().enumerate() {
                sub.updated_at = t;
                sub.status = match i.cmp(&index) {
                    std::cmp::Ordering::Less => "FINISHED",
                    std::cmp::Ordering::Equal => "FAILED",
                    std::cmp::Ordering::Greater => "ABORTED",
                };
                if i == index {
                    sub.error = Some(message.clone());
                }
            }
        }
    }
}

fn injected_failure(knobs: &Knobs, new: &NewStatement) -> Option<(usize, String)> {
    if knobs.fail_database.as_deref() == Some(new.database.as_str()) {
        return Some((0, format!("ERROR: injected failure for database {}", new.database)));
    }
    let re = Regex::new(knobs.fail_sql.as_deref()?).expect("validated when set");
    new.sqls.iter().position(|s| re.is_match(s)).map(|i| (i, "ERROR: injected failure for this SQL".to_string()))
}

fn set_status(statement: &Arc<Mutex<Statement>>, status: &'static str) {
    let mut s = statement.lock().unwrap();
    if s.status != "ABORTED" {
        s.status = status;
        s.updated_at = now();
        for sub in &mut s.subs {
            sub.status = status;
        }
    }
}
