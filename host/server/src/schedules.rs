//! Cron triggers: each schedule's ticks become queued runs; a tick that
//! cannot run is recorded as a run with status `missed` and the reason, never
//! dropped silently; and a tick fires once, however many hosts share the
//! store (each moves the schedule's last tick from the value it read).

use std::sync::Arc;
use std::time::Duration;

use aerie_engine::{Missed, Overlap, Playbook, RunRecord, RunStatus, Schedule, Timetable, Trigger};
use aerie_store::{Store, StoreError, Tick};
use serde_json::json;
use tokio::sync::Notify;

/// A tick first seen later than this after its time did not fire on time:
/// no server was running then (or none could reach the store).
pub const LATE_MS: i64 = 60_000;

/// Missed ticks recorded one by one; past this many, the rest are one record.
pub const LISTED: usize = 100;

/// The longest the loop sleeps: a schedule another host moved, or a clock
/// that jumped, is noticed within this.
const NAP: Duration = Duration::from_secs(30);

/// A playbook with a cron trigger, its schedule parsed.
pub struct Scheduled {
    playbook: Arc<Playbook>,
    schedule: Schedule,
    timetable: Timetable,
}

impl Scheduled {
    /// The playbook's schedule if its trigger is cron; an error when the
    /// schedule does not parse or the playbook needs an input a tick cannot
    /// give (a tick's input is empty, so every input needs a default).
    pub fn new(playbook: Arc<Playbook>) -> Result<Option<Scheduled>, String> {
        let Some(Trigger::Cron(schedule)) = playbook.trigger.clone() else {
            return Ok(None);
        };
        let timetable = schedule.timetable()?;
        aerie_engine::new_run(&playbook, &json!({}), RunStatus::Queued)
            .map_err(|e| format!("a cron tick starts it with no input: {e}"))?;
        Ok(Some(Scheduled {
            playbook,
            schedule,
            timetable,
        }))
    }

    pub fn name(&self) -> &str {
        &self.playbook.name
    }

    /// The first tick after `now_ms`.
    pub fn next(&self, now_ms: i64) -> Option<i64> {
        self.timetable.next(now_ms)
    }
}

/// What one look at a schedule did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fired {
    /// The run queued, if one was.
    pub queued: Option<String>,
    /// Ticks recorded as missed.
    pub missed: usize,
}

/// Fires what is due of `scheduled` at `now_ms`: the runs and missed ticks
/// since the last tick the store holds. The first look at a schedule only
/// records `now_ms`: ticks before a playbook was served are not missed.
pub async fn tick(store: &Store, scheduled: &Scheduled, now_ms: i64) -> Result<Fired, StoreError> {
    let name = scheduled.name();
    let Some(last) = store.last_tick(name).await? else {
        store
            .fire(scheduled.record(None, now_ms, None, Vec::new()))
            .await?;
        return Ok(Fired::default());
    };
    let mut due = scheduled.timetable.ticks(last, now_ms, LISTED);
    let Some(&listed_last) = due.last() else {
        return Ok(Fired::default());
    };
    let latest = scheduled
        .timetable
        .latest(now_ms)
        .unwrap_or(listed_last)
        .max(listed_last);
    due.retain(|&t| t != latest);
    let mut missed: Vec<RunRecord> = due
        .iter()
        .map(|&t| {
            scheduled.missed(
                t,
                "no server fired it on time (none was running, or none reached the store)",
            )
        })
        .collect();
    if latest > listed_last {
        missed.push(scheduled.missed(
            listed_last,
            &format!(
                "and every tick after it up to {}, not listed one by one",
                text(latest)
            ),
        ));
    }
    let on_time = now_ms - latest <= LATE_MS;
    let mut run = None;
    if !on_time && scheduled.schedule.missed == Missed::Skip {
        missed.push(scheduled.missed(
            latest,
            "no server fired it on time, and the schedule says `missed: skip`",
        ));
    } else if let Some(previous) = match scheduled.schedule.overlap {
        Overlap::Skip => store.unfinished(name).await?,
        Overlap::Allow => None,
    } {
        missed.push(scheduled.missed(
            latest,
            &format!("run {previous} had not finished, and the schedule says `overlap: skip`"),
        ));
    } else {
        run = Some(scheduled.run(latest));
    }
    let fired = Fired {
        queued: run
            .as_ref()
            .map(|(r, _): &(RunRecord, String)| r.id.clone()),
        missed: missed.len(),
    };
    if store
        .fire(scheduled.record(Some(last), latest, run, missed))
        .await?
    {
        Ok(fired)
    } else {
        // Another host moved the schedule first: it fired this tick.
        Ok(Fired::default())
    }
}

impl Scheduled {
    fn record(
        &self,
        seen: Option<i64>,
        last: i64,
        run: Option<(RunRecord, String)>,
        missed: Vec<RunRecord>,
    ) -> Tick {
        Tick {
            playbook: self.playbook.name.clone(),
            definition: self.playbook.source().to_owned(),
            seen,
            last,
            run,
            missed,
        }
    }

    fn run(&self, at: i64) -> (RunRecord, String) {
        let run = aerie_engine::new_run(&self.playbook, &json!({}), RunStatus::Queued)
            .expect("checked in Scheduled::new");
        (run, format!("cron:{}", text(at)))
    }

    fn missed(&self, at: i64, why: &str) -> RunRecord {
        let mut run = aerie_engine::new_run(&self.playbook, &json!({}), RunStatus::Missed)
            .expect("checked in Scheduled::new");
        run.error = Some(format!("tick {} missed: {why}", text(at)));
        run.started_at = text(at);
        run
    }
}

/// A tick's time as the RFC 3339 UTC text every stored time is.
fn text(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// Fires every schedule when it is due, for as long as the task lives; wakes
/// the workers when it queued a run. `clock` is the time in ms.
pub async fn run(store: Store, scheduled: Vec<Scheduled>, wake: Arc<Notify>, clock: fn() -> i64) {
    if scheduled.is_empty() {
        return;
    }
    loop {
        let now = clock();
        for schedule in &scheduled {
            let trigger = format!("cron:{}", schedule.name());
            match tick(&store, schedule, now).await {
                Ok(fired) => {
                    if fired.queued.is_some() {
                        metrics::counter!("aerie_trigger_fires_total", "trigger" => trigger.clone())
                            .increment(1);
                        wake.notify_one();
                    }
                    metrics::counter!("aerie_schedule_missed_total", "trigger" => trigger)
                        .increment(fired.missed as u64);
                    if fired.missed > 0 {
                        tracing::warn!(
                            playbook = schedule.name(),
                            missed = fired.missed,
                            "schedule ticks recorded as missed"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(playbook = schedule.name(), error = %e, "firing the schedule")
                }
            }
        }
        let next = scheduled.iter().filter_map(|s| s.next(now)).min();
        let wait = next.map_or(NAP, |next| {
            Duration::from_millis(u64::try_from(next - clock()).unwrap_or(0)).min(NAP)
        });
        tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn scheduled(trigger: &str) -> Scheduled {
        let source =
            format!("name: pull\ntrigger: {trigger}\nsteps:\n  - id: note\n    log: tick\n");
        let playbook = Playbook::parse(Path::new("pull.yaml"), &source).unwrap();
        Scheduled::new(Arc::new(playbook)).unwrap().unwrap()
    }

    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&format!(
            "sqlite://{}",
            dir.path().join("aerie.db").display()
        ))
        .await
        .unwrap()
    }

    /// A new store, the schedule of `trigger`, and its first look at `first`.
    async fn seen(trigger: &str, first: &str) -> (tempfile::TempDir, Store, Scheduled) {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let schedule = scheduled(trigger);
        let fired = tick(&store, &schedule, ms(first)).await.unwrap();
        assert_eq!(fired, Fired::default());
        (dir, store, schedule)
    }

    /// (status, started_at, error) of every run, by started_at (a missed
    /// tick's is the tick's time; a queued run's when it was queued).
    async fn runs(store: &Store) -> Vec<(String, String, Option<String>)> {
        let mut out = Vec::new();
        for summary in store.runs(10_000).await.unwrap().into_iter().rev() {
            let run = store.run(&summary.id).await.unwrap().unwrap();
            let error = run["error"].as_str().map(str::to_owned);
            out.push((summary.status, summary.started_at, error));
        }
        out
    }

    #[tokio::test]
    async fn a_tick_fires_once_and_a_restart_catches_up_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let every_five = scheduled("{ cron: { schedule: \"*/5 * * * *\", overlap: allow } }");

        // First sight: the time is recorded, nothing is due.
        assert_eq!(
            tick(&store, &every_five, ms("2026-12-02T10:03:00Z"))
                .await
                .unwrap(),
            Fired::default()
        );
        assert_eq!(
            store.last_tick("pull").await.unwrap(),
            Some(ms("2026-12-02T10:03:00Z"))
        );
        // The 10:05 tick, seen on time: one run; seen again: nothing more.
        let fired = tick(&store, &every_five, ms("2026-12-02T10:05:00.2Z"))
            .await
            .unwrap();
        assert!(fired.queued.is_some() && fired.missed == 0, "{fired:?}");
        let again = tick(&store, &every_five, ms("2026-12-02T10:05:01Z"))
            .await
            .unwrap();
        assert_eq!(again, Fired::default());

        // Down from 10:06 to 11:00:30: one run catches up (missed: run_once),
        // and the ten ticks it stands for are each recorded.
        let fired = tick(&store, &every_five, ms("2026-12-02T11:00:30Z"))
            .await
            .unwrap();
        assert!(fired.queued.is_some(), "{fired:?}");
        assert_eq!(fired.missed, 10);
        let runs = runs(&store).await;
        assert_eq!(runs.iter().filter(|r| r.0 == "queued").count(), 2);
        let missed: Vec<_> = runs.iter().filter(|r| r.0 == "missed").collect();
        assert_eq!(missed.len(), 10);
        assert_eq!(missed[0].1, "2026-12-02T10:10:00Z");
        assert_eq!(missed[9].1, "2026-12-02T10:55:00Z");
        assert_eq!(
            missed[0].2.as_deref(),
            Some(
                "tick 2026-12-02T10:10:00Z missed: no server fired it on time (none was running, or none reached the store)"
            )
        );
        assert_eq!(
            store.last_tick("pull").await.unwrap(),
            Some(ms("2026-12-02T11:00:00Z"))
        );
    }

    #[tokio::test]
    async fn missed_skip_runs_nothing_late_and_records_every_tick() {
        let (_dir, store, skip) = seen(
            "{ cron: { schedule: \"*/5 * * * *\", missed: skip } }",
            "2026-12-02T10:00:00Z",
        )
        .await;
        // Back at 10:32, two minutes after the 10:30 tick: nothing runs.
        let fired = tick(&store, &skip, ms("2026-12-02T10:32:00Z"))
            .await
            .unwrap();
        assert_eq!(
            fired,
            Fired {
                queued: None,
                missed: 6
            }
        );
        let runs = runs(&store).await;
        assert!(runs.iter().all(|r| r.0 == "missed"), "{runs:?}");
        assert!(
            runs[5]
                .2
                .as_deref()
                .unwrap()
                .ends_with("the schedule says `missed: skip`")
        );
        // The next tick seen on time runs.
        let fired = tick(&store, &skip, ms("2026-12-02T10:35:05Z"))
            .await
            .unwrap();
        assert!(fired.queued.is_some() && fired.missed == 0, "{fired:?}");
    }

    #[tokio::test]
    async fn overlap_skip_records_a_tick_while_the_last_run_is_unfinished() {
        let (_dir, store, pull) = seen("{ cron: \"*/5 * * * *\" }", "2026-12-02T10:00:00Z").await;
        let first = tick(&store, &pull, ms("2026-12-02T10:05:00Z"))
            .await
            .unwrap()
            .queued
            .unwrap();
        // No worker took it: the 10:10 tick does not start a second.
        let fired = tick(&store, &pull, ms("2026-12-02T10:10:00Z"))
            .await
            .unwrap();
        assert_eq!(
            fired,
            Fired {
                queued: None,
                missed: 1
            }
        );
        let runs = runs(&store).await;
        let missed = runs.iter().find(|r| r.0 == "missed").unwrap();
        assert_eq!(
            missed.2.as_deref(),
            Some(format!("tick 2026-12-02T10:10:00Z missed: run {first} had not finished, and the schedule says `overlap: skip`").as_str())
        );
    }

    #[tokio::test]
    async fn two_hosts_looking_at_once_fire_a_tick_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (store(&dir).await, store(&dir).await);
        let pull = scheduled("{ cron: { schedule: \"* * * * *\", overlap: allow } }");
        tick(&a, &pull, ms("2026-12-02T10:00:00Z")).await.unwrap();
        let at = ms("2026-12-02T10:01:00Z");
        let (x, y) = tokio::join!(tick(&a, &pull, at), tick(&b, &pull, at));
        let queued = [x.unwrap(), y.unwrap()]
            .iter()
            .filter(|f| f.queued.is_some())
            .count();
        assert_eq!(queued, 1);
        assert_eq!(runs(&a).await.len(), 1);
    }

    #[tokio::test]
    async fn a_long_outage_is_recorded_without_a_record_per_tick() {
        let (_dir, store, every_minute) = seen(
            "{ cron: { schedule: \"* * * * *\", overlap: allow } }",
            "2026-12-01T10:00:00Z",
        )
        .await;
        // A day down: 1,440 ticks, one run, LISTED records and one for the rest.
        let fired = tick(&store, &every_minute, ms("2026-12-02T10:00:10Z"))
            .await
            .unwrap();
        assert!(fired.queued.is_some());
        assert_eq!(fired.missed, LISTED + 1);
        let runs = runs(&store).await;
        let last_missed = runs.iter().rfind(|r| r.0 == "missed").unwrap();
        assert!(
            last_missed.2.as_deref().unwrap().ends_with(
                "and every tick after it up to 2026-12-02T10:00:00Z, not listed one by one"
            ),
            "{last_missed:?}"
        );
    }

    #[test]
    fn a_cron_playbook_needing_an_input_is_refused() {
        let source = "name: pull\ninputs:\n  ip: { type: string, required: true }\ntrigger: { cron: \"0 * * * *\" }\nsteps: []\n";
        let playbook = Playbook::parse(Path::new("pull.yaml"), source).unwrap();
        let err = Scheduled::new(Arc::new(playbook)).err().unwrap();
        assert!(
            err.starts_with("a cron tick starts it with no input: "),
            "{err}"
        );
    }
}
