//! In-memory adapters of the ports, for unit tests of the domain logic. The stack tests
//! (`tests/`) prove the AWS adapters; these let the rules be checked without them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::error::AwsError;
use crate::ports::{Condition, Listed, Object, ObjectStore};
use crate::publish::sha256_hex;

/// An object store in memory, with S3's conditional writes. Puts of keys containing
/// `fail_puts` fail as S3's 500 does. An object put in `objects` directly was written long ago;
/// one put through the port, now.
#[derive(Default)]
pub(crate) struct MemoryStore {
    pub(crate) objects: Mutex<BTreeMap<String, Vec<u8>>>,
    pub(crate) modified: Mutex<BTreeMap<String, OffsetDateTime>>,
    pub(crate) fail_puts: Option<&'static str>,
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
        Ok(())
    }
}
