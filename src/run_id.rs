//! Run ids: `20261126T171502123Z-1a2b3c4d`, the UTC millisecond a run started and a random suffix.
//! A run id arriving from outside (a queue message, a summary request) is accepted only in this
//! format and not dated in the future, and commits are ordered by the time it carries: a forged
//! id such as `99991231T...` must not make every later real run yield to it.

use std::fmt;

use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// How far ahead of this function's clock a run id may be dated: the clocks of two Lambda
/// hosts (NTP-synchronised) never differ by this much.
pub(crate) const CLOCK_SKEW: Duration = Duration::minutes(5);

const STAMP: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second][subsecond digits:3]Z");
const STAMP_LEN: usize = "20261126T171502123Z".len();

/// A parsed run id; ordered by its time, then its suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunId {
    started: OffsetDateTime,
    suffix: u32,
}

/// Why a run id from outside is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunIdError {
    #[error("{0:?} is not a run id of this function (like \"20261126T171502123Z-1a2b3c4d\")")]
    Format(String),
    #[error("run id {id} is dated {ahead} ahead of this function's clock (more than the {CLOCK_SKEW} allowed)")]
    Future { id: String, ahead: Duration },
}

impl RunId {
    /// A new run's id, now.
    pub fn new() -> Self {
        let now = OffsetDateTime::now_utc();
        let started = now.replace_nanosecond(now.millisecond() as u32 * 1_000_000).expect("a valid nanosecond");
        Self { started, suffix: fastrand::u32(..) }
    }

    /// Parses the function's own format, nothing else (so an id can never leave the `runs/`
    /// folder of a key).
    pub fn parse(text: &str) -> Result<Self, RunIdError> {
        let bad = || RunIdError::Format(text.chars().take(80).collect());
        let (stamp, suffix) = text.split_once('-').ok_or_else(bad)?;
        let hex = |s: &str| s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if stamp.len() != STAMP_LEN || !hex(suffix) {
            return Err(bad());
        }
        let started = PrimitiveDateTime::parse(stamp, STAMP).map_err(|_| bad())?.assume_utc();
        Ok(Self { started, suffix: u32::from_str_radix(suffix, 16).map_err(|_| bad())? })
    }

    /// Parses a run id from outside: the format, and not dated beyond [`CLOCK_SKEW`] from `now`.
    pub(crate) fn parse_received(text: &str, now: OffsetDateTime) -> Result<Self, RunIdError> {
        let id = Self::parse(text)?;
        let ahead = id.started - now;
        if ahead > CLOCK_SKEW {
            return Err(RunIdError::Future { id: text.to_string(), ahead });
        }
        Ok(id)
    }

    /// When the run started.
    pub fn started(&self) -> OffsetDateTime {
        self.started
    }

    /// Whether `other` (an id read from S3) belongs to a run that started after this one. An
    /// id that does not parse, or is dated beyond the clock skew (one this function would
    /// refuse from outside), is no newer run: it must not freeze the warehouse.
    pub(crate) fn is_superseded_by(&self, other: &str, now: OffsetDateTime) -> bool {
        Self::parse_received(other, now).is_ok_and(|other| other > *self)
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stamp = self.started.format(STAMP).map_err(|_| fmt::Error)?;
        write!(f, "{stamp}-{:08x}", self.suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> OffsetDateTime {
        PrimitiveDateTime::parse(text, STAMP).unwrap().assume_utc()
    }

    #[test]
    fn a_new_id_reads_back_as_itself() {
        let id = RunId::new();
        assert_eq!(RunId::parse(&id.to_string()), Ok(id));
        assert_eq!(id.to_string().len(), STAMP_LEN + 9);
    }

    #[test]
    fn only_the_functions_format_is_accepted() {
        for bad in [
            "",
            "20261126T171502Z-1a2b3c4d",
            "20261126T171502123Z-1A2B3C4D",
            "20261126T171502123Z-1a2b3c4",
            "20261126T171502123Z-1a2b3c4d-x",
            "20261326T171502123Z-1a2b3c4d",
            "../../index/x",
            "r",
        ] {
            assert!(matches!(RunId::parse(bad), Err(RunIdError::Format(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_id_dated_in_the_future_is_refused_beyond_the_skew() {
        let now = at("20261205T100000000Z");
        assert!(RunId::parse_received("20261205T100400000Z-00000001", now).is_ok(), "within the skew");
        let far = RunId::parse_received("99991231T235959999Z-ffffffff", now);
        assert!(matches!(far, Err(RunIdError::Future { .. })), "{far:?}");
    }

    #[test]
    fn ordering_is_by_time_and_a_forged_future_id_is_no_newer_run() {
        let now = at("20261205T100000000Z");
        let run = RunId::parse("20261205T095959000Z-ffffffff").unwrap();
        assert!(run.is_superseded_by("20261205T095959001Z-00000000", now));
        assert!(!run.is_superseded_by("20261205T095958999Z-ffffffff", now));
        assert!(!run.is_superseded_by("99991231T235959999Z-00000000", now), "a forged id freezes nothing");
        assert!(!run.is_superseded_by("zzzz", now));
    }
}
