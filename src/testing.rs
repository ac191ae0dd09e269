//! In-memory adapters of the ports, for unit tests of the domain logic. The stack tests
//! (`tests/`) prove the AWS adapters; these let the rules be checked without them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::catalog::{Cluster, WarehouseCatalog, WarehouseId, Workgroup};
use crate::error::AwsError;
use crate::layout::sha256_hex;
use crate::ports::{
    AccountSession, Condition, DataApi, Fetch, Listed, Object, ObjectStore, OrganizationDirectory, Page, Phase,
    Platform, ResultFormat, Row, ShardQueue, Started, StatementState, Target, WarehouseDirectory,
};

/// An object store in memory, with S3's conditional writes. Puts of keys containing
/// `fail_puts` fail as S3's 500 does. An object put in `objects` directly was written long ago;
/// one put through the port, now. `log` has every write that took effect, in order
/// (`put KEY`, `delete KEY`).
#[derive(Default)]
pub(crate) struct MemoryStore {
    pub(crate) objects: Mutex<BTreeMap<String, Vec<u8>>>,
    pub(crate) modified: Mutex<BTreeMap<String, OffsetDateTime>>,
    pub(crate) fail_puts: Option<&'static str>,
    pub(crate) log: Mutex<Vec<String>>,
}

/// Cluster `c` of account 111111111111 in us-east-1, before its read.
pub(crate) fn cluster_c() -> WarehouseCatalog {
    WarehouseCatalog {
        account_id: "111111111111".into(),
        region: "us-east-1".into(),
        warehouse: WarehouseId::ClusterIdentifier("c".into()),
        arn: None,
        labels: BTreeMap::new(),
        databases: vec![],
        unread_databases: vec![],
        sharing_unread: false,
    }
}

/// The ETag of a body: its content, as S3's is for a single-part upload.
pub(crate) fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", &sha256_hex(bytes)[..32])
}

impl MemoryStore {
    pub(crate) fn keys(&self, containing: &str) -> Vec<String> {
        self.objects.lock().unwrap().keys().filter(|k| k.contains(containing)).cloned().collect()
    }
}

impl ObjectStore for MemoryStore {
    async fn list_modified(&self, _bucket: &str, prefix: &str) -> Result<Vec<Listed>, AwsError> {
        let objects = self.objects.lock().unwrap();
        let modified = self.modified.lock().unwrap();
        let under = objects.keys().filter(|k| k.starts_with(prefix));
        let at = |key: &String| modified.get(key).copied().unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Ok(under.map(|key| Listed { key: key.clone(), modified: at(key) }).collect())
    }

    async fn delete(&self, _bucket: &str, keys: &[String]) -> Result<(), AwsError> {
        let mut objects = self.objects.lock().unwrap();
        keys.iter().for_each(|k| drop(objects.remove(k)));
        self.log.lock().unwrap().extend(keys.iter().map(|k| format!("delete {k}")));
        Ok(())
    }

    async fn get(&self, _bucket: &str, key: &str) -> Result<Object, AwsError> {
        let found = self.objects.lock().unwrap().get(key).cloned();
        let bytes = found.ok_or_else(|| AwsError::from_code("s3:GetObject", Some("NoSuchKey"), key.into()))?;
        Ok(Object { etag: etag_of(&bytes), bytes })
    }

    async fn put(
        &self,
        _bucket: &str,
        key: &str,
        body: Vec<u8>,
        _content_type: &str,
        condition: Condition<'_>,
    ) -> Result<(), AwsError> {
        if self.fail_puts.is_some_and(|f| key.contains(f)) {
            return Err(AwsError::from_code("s3:PutObject", Some("InternalError"), "injected".into()));
        }
        let mut objects = self.objects.lock().unwrap();
        let current = objects.get(key).map(|b| etag_of(b));
        let holds = match condition {
            Condition::Any => true,
            Condition::Absent => current.is_none(),
            Condition::Unchanged(etag) => current.as_deref() == Some(etag),
        };
        if !holds {
            let message = format!("{key}: at least one of the pre-conditions you specified did not hold");
            return Err(AwsError::from_code("s3:PutObject", Some("PreconditionFailed"), message));
        }
        objects.insert(key.into(), body);
        self.modified.lock().unwrap().insert(key.into(), OffsetDateTime::now_utc());
        self.log.lock().unwrap().push(format!("put {key}"));
        Ok(())
    }
}

/// Accounts with no warehouse: each role is assumed, or refused with `refusal`; each region
/// lists no cluster and no workgroup (a named one is missing), so no statement is ever started.
#[derive(Default)]
pub(crate) struct EmptyAccounts {
    pub(crate) refusal: Option<AwsError>,
}

/// One assumed role of [`EmptyAccounts`], and every port it opens.
pub(crate) struct EmptyAccount;

impl Platform for EmptyAccounts {
    type Account = EmptyAccount;

    async fn assume_role(
        &self,
        _role: &str,
        _external_id: Option<&str>,
        _session: &str,
    ) -> Result<EmptyAccount, AwsError> {
        self.refusal.clone().map_or(Ok(EmptyAccount), Err)
    }
}

impl AccountSession for EmptyAccount {
    type Directory = EmptyAccount;
    type Data = EmptyAccount;
    type Organization = EmptyAccount;

    fn directory(&self, _region: &str) -> EmptyAccount {
        EmptyAccount
    }
    fn data_api(&self, _region: &str) -> EmptyAccount {
        EmptyAccount
    }
    fn organization(&self) -> EmptyAccount {
        EmptyAccount
    }
}

impl WarehouseDirectory for EmptyAccount {
    async fn list_clusters(&self) -> Result<Vec<Cluster>, AwsError> {
        Ok(Vec::new())
    }
    async fn find_cluster(&self, _identifier: &str) -> Result<Option<Cluster>, AwsError> {
        Ok(None)
    }
    async fn list_workgroups(&self) -> Result<Vec<Workgroup>, AwsError> {
        Ok(Vec::new())
    }
    async fn find_workgroup(&self, _name: &str) -> Result<Option<Workgroup>, AwsError> {
        Ok(None)
    }
}

impl OrganizationDirectory for EmptyAccount {
    async fn active_accounts(&self, _organizational_units: &[String]) -> Result<Vec<String>, AwsError> {
        Ok(Vec::new())
    }
}

/// No warehouse, so no statement: a call is a bug in the test's premise.
impl DataApi for EmptyAccount {
    async fn execute(&self, _: &Target, _: &str, _: &str, _: &[(&str, &str)], _: Fetch) -> Result<Started, AwsError> {
        unreachable!("an empty account has no warehouse to run a statement on")
    }
    async fn batch_execute(&self, _: &Target, _: &str, _: &[String], _: Fetch) -> Result<Started, AwsError> {
        unreachable!("an empty account has no warehouse to run a statement on")
    }
    async fn describe(&self, _: &str, _: u8) -> Result<StatementState, AwsError> {
        unreachable!("an empty account has no statement")
    }
    async fn page(&self, _: &str, _: Option<String>, _: ResultFormat) -> Result<Page, AwsError> {
        unreachable!("an empty account has no statement")
    }
    async fn cancel(&self, _: &str) -> Result<(), AwsError> {
        unreachable!("an empty account has no statement")
    }
}

/// A Data API that answers single statements from a script, by their SQL. A statement stays
/// running for its `polls` DescribeStatement calls, then ends as its `end` says: its pages of
/// rows, or a failure with that error message. The first `busy` ExecuteStatement calls are
/// refused as a warehouse with too many active statements refuses them. Cancels are recorded.
#[derive(Default)]
pub(crate) struct ScriptedDataApi {
    pub(crate) scripts: BTreeMap<String, Script>,
    pub(crate) busy: Mutex<u32>,
    pub(crate) cancelled: Mutex<Vec<String>>,
    /// Each started statement's SQL and the DescribeStatement calls it has had.
    started: Mutex<Vec<(String, u32)>>,
}

impl ScriptedDataApi {
    pub(crate) fn new(scripts: impl IntoIterator<Item = (&'static str, Script)>) -> Self {
        let scripts = scripts.into_iter().map(|(sql, script)| (sql.to_string(), script)).collect();
        Self { scripts, ..Self::default() }
    }
}

pub(crate) struct Script {
    pub(crate) polls: u32,
    pub(crate) end: Result<Vec<Vec<Row>>, String>,
}

impl ScriptedDataApi {
    /// A started statement's script, and the DescribeStatement calls it has had (this one
    /// counted when `polled`).
    fn script(&self, id: &str, polled: bool) -> (&Script, u32) {
        let mut started = self.started.lock().unwrap();
        let (sql, polls) = &mut started[id.parse::<usize>().expect("a scripted statement id")];
        *polls += u32::from(polled);
        (&self.scripts[sql.as_str()], *polls)
    }
}

impl DataApi for ScriptedDataApi {
    async fn execute(&self, _: &Target, _: &str, sql: &str, _: &[(&str, &str)], _: Fetch) -> Result<Started, AwsError> {
        let mut busy = self.busy.lock().unwrap();
        if *busy > 0 {
            *busy -= 1;
            let message = "Active statements exceeded the allowed quota".into();
            return Err(AwsError::from_code(
                "redshift-data:ExecuteStatement",
                Some("ActiveStatementsExceededException"),
                message,
            ));
        }
        let mut started = self.started.lock().unwrap();
        started.push((sql.to_string(), 0));
        Ok(Started { id: (started.len() - 1).to_string(), state: None })
    }
    async fn batch_execute(&self, _: &Target, _: &str, _: &[String], _: Fetch) -> Result<Started, AwsError> {
        unreachable!("a script has single statements")
    }
    async fn describe(&self, id: &str, _: u8) -> Result<StatementState, AwsError> {
        let (script, polls) = self.script(id, true);
        let phase = match &script.end {
            _ if polls <= script.polls => Phase::Running,
            Ok(_) => Phase::Finished,
            Err(message) => Phase::Failed(message.clone()),
        };
        Ok(StatementState { phase, subs: Vec::new(), has_result_set: true })
    }
    async fn page(&self, id: &str, token: Option<String>, _: ResultFormat) -> Result<Page, AwsError> {
        let (script, _) = self.script(id, false);
        let pages = script.end.as_ref().expect("a finished statement has pages");
        let at: usize = token.map_or(0, |t| t.parse().expect("a scripted token"));
        let next_token = (at + 1 < pages.len()).then(|| (at + 1).to_string());
        Ok(Page { rows: pages[at].clone(), next_token })
    }
    async fn cancel(&self, id: &str) -> Result<(), AwsError> {
        self.cancelled.lock().unwrap().push(id.to_string());
        Ok(())
    }
}

/// A queue in memory: the bodies sent, by queue URL.
#[derive(Default)]
pub(crate) struct MemoryQueue {
    pub(crate) sent: Mutex<BTreeMap<String, Vec<String>>>,
}

impl ShardQueue for MemoryQueue {
    async fn send(&self, queue_url: &str, bodies: Vec<String>) -> Result<(), AwsError> {
        self.sent.lock().unwrap().entry(queue_url.to_string()).or_default().extend(bodies);
        Ok(())
    }
}
