use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aerie_contract::ErrorCode;
use serde_json::{Value, json};

use super::Runner;
use super::tests_support::*;
use crate::playbook::Playbook;
use crate::run::{RunRecord, RunStatus, StepLogs, StepStatus};

const NOW: Duration = Duration::ZERO;

async fn run_with(source: &str, plugins: &Scripted, store: &Memory) -> RunRecord {
    let playbook = Playbook::parse(Path::new("t.yaml"), source).unwrap();
    Runner::new(plugins, store)
        .run(&playbook, &json!({}))
        .await
        .unwrap()
}

async fn run(source: &str, plugins: &Scripted) -> (RunRecord, Vec<String>) {
    let store = Memory::default();
    let run = run_with(source, plugins, &store).await;
    (run, store.events())
}

const RETRYING: &str = "name: t\nsteps:\n  - id: vt\n    uses: vt.lookup\n    retry: { attempts: 3, backoff: 5ms, max_backoff: 20ms }\n    timeout: 200ms\n";

#[tokio::test]
async fn retryable_errors_are_retried_until_success() {
    let plugins = Scripted::new(vec![
        (NOW, err(ErrorCode::RateLimited, true)),
        (NOW, err(ErrorCode::RateLimited, true)),
        (NOW, Ok(json!({"verdict": "clean"}))),
    ]);
    let (run, events) = run(RETRYING, &plugins).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.steps[0].attempts, 3);
    assert_eq!(run.steps[0].output, json!({"verdict": "clean"}));
    assert_eq!(
        events,
        [
            "run.started",
            "vt:running#1",
            "vt:requests:1",
            "vt:running#2",
            "vt:requests:1",
            "vt:running#3",
            "vt:requests:1",
            "vt:succeeded#3",
            "run.succeeded"
        ]
    );
}

#[tokio::test]
async fn other_errors_are_not_retried() {
    let plugins = Scripted::new(vec![(NOW, err(ErrorCode::Unauthorized, false))]);
    let (run, _) = run(RETRYING, &plugins).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.steps[0].attempts, 1);
    assert_eq!(
        run.error.as_deref(),
        Some("step `vt`: unauthorized: unauthorized happened")
    );
}

#[tokio::test]
async fn a_slow_call_times_out_and_the_timeout_is_retried() {
    let plugins = Scripted::new(vec![
        (Duration::from_secs(5), Ok(json!("too late"))),
        (NOW, Ok(json!("in time"))),
    ]);
    let (run, _) = run(RETRYING, &plugins).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.steps[0].attempts, 2);
    assert_eq!(run.steps[0].output, json!("in time"));
}

#[tokio::test]
async fn retries_give_up_after_the_last_attempt() {
    let plugins = Scripted::new(vec![(NOW, err(ErrorCode::Upstream, true)); 3]);
    let (run, _) = run(RETRYING, &plugins).await;
    assert_eq!((run.status, run.steps[0].attempts), (RunStatus::Failed, 3));
}

#[tokio::test]
async fn for_each_continue_keeps_going_and_if_skips() {
    let source = "name: t\nsteps:\n  - id: each\n    for_each: \"{{ [1, 2, 3] }}\"\n    uses: p.a\n    with: { n: \"{{ item|int * 10 }}\", i: \"{{ index }}\" }\n    on_error: continue\n  - id: never\n    if: \"{{ steps.each.status == 'succeeded' }}\"\n    log: unreachable\noutput: \"{{ steps.each.output }}\"\n";
    let plugins = Scripted::new(vec![
        (NOW, Ok(json!(1))),
        (NOW, err(ErrorCode::Upstream, false)),
        (NOW, Ok(json!(3))),
    ]);
    let (run, _) = run(source, &plugins).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        run.output,
        json!([1, {"error": {"code": "upstream", "message": "upstream happened"}}, 3])
    );
    assert_eq!(run.steps[0].status, StepStatus::Failed);
    assert_eq!(run.steps[1].status, StepStatus::Skipped);
    assert_eq!(
        *plugins.calls.lock().unwrap(),
        [
            json!({"n": 10, "i": 0}),
            json!({"n": 20, "i": 1}),
            json!({"n": 30, "i": 2})
        ]
    );
}

/// After a failure that fails the run no new item starts, whatever the
/// window; the items in flight finish and are recorded, and every attempt is
/// written before it starts.
#[tokio::test]
async fn a_failed_item_stops_new_items_with_or_without_concurrency() {
    for (concurrency, expected) in [
        (
            "",
            vec![
                "each:running#1",
                "each:requests:1",
                "each:running#2",
                "each:requests:1",
                "each:failed#2",
            ],
        ),
        (
            "    concurrency: 2\n",
            vec![
                "each:running#1",
                "each:running#2",
                "each:requests:1",
                "each:requests:1",
                "each:failed#2",
            ],
        ),
    ] {
        let source = format!(
            "name: t\nsteps:\n  - id: each\n    for_each: \"{{{{ [0, 1, 2, 3, 4] }}}}\"\n{concurrency}    uses: p.a\n    with: {{ n: \"{{{{ item }}}}\" }}\n"
        );
        // Item 0 is slow and succeeds; item 1 fails at once. With two slots,
        // item 0 is still in flight when item 1 fails.
        let plugins = Scripted::new(vec![
            (Duration::from_millis(50), Ok(json!(0))),
            (NOW, err(ErrorCode::Upstream, false)),
            (NOW, Ok(json!(2))),
            (NOW, Ok(json!(3))),
            (NOW, Ok(json!(4))),
        ]);
        let store = Memory::default();
        let run = run_with(&source, &plugins, &store).await;
        assert_eq!(run.status, RunStatus::Failed, "{concurrency}");
        assert_eq!(plugins.calls.lock().unwrap().len(), 2, "{concurrency}");
        let step = &run.steps[0];
        assert_eq!(step.attempts, 2);
        assert_eq!(step.input, json!([{"n": 0}, {"n": 1}]), "{concurrency}");
        assert_eq!(
            step.output,
            json!([0, {"error": {"code": "upstream", "message": "upstream happened"}}]),
            "{concurrency}"
        );
        assert_eq!(
            run.error.as_deref(),
            Some("step `each`: upstream: item 1: upstream happened")
        );
        let events = store.events();
        assert_eq!(events[1..events.len() - 1], expected, "{concurrency}");
    }
}

#[tokio::test]
async fn plugin_logs_are_kept_up_to_a_cap_per_step_and_the_rest_counted() {
    let source =
        "name: t\nsteps:\n  - id: each\n    for_each: \"{{ [0, 1, 2] }}\"\n    uses: p.a\n";
    let plugins = Scripted::answering(
        (0..3)
            .map(|n| Answer {
                delay: NOW,
                result: Ok(json!(n)),
                logs: 200,
            })
            .collect(),
    );
    let store = Memory::default();
    run_with(source, &plugins, &store).await;
    let logs = store.logs.lock().unwrap().clone();
    let kept: usize = logs.iter().map(|(_, kept, _)| kept).sum();
    let dropped: u64 = logs.iter().map(|(_, _, dropped)| dropped).sum();
    assert_eq!(kept, StepLogs::MAX_LINES);
    assert_eq!(dropped, 600 - StepLogs::MAX_LINES as u64);
    assert_eq!(logs[2], ("each".to_owned(), 100, 100));
}

#[tokio::test]
async fn switch_runs_the_matching_case_and_skips_the_rest() {
    let source = r#"
name: t
inputs:
  verdict: { required: true }
steps:
  - id: route
    switch: "{{ inputs.verdict }}"
    cases:
      malicious:
        - { id: block, set: { action: block } }
        - { id: tell, log: "blocked" }
      clean:
        - { id: close, set: { action: close } }
    default:
      - { id: triage, set: { action: triage } }
  - id: after
    set: { route: "{{ steps.route.output }}", block: "{{ steps.block.output }}", close: "{{ steps.close.status }}" }
output: "{{ steps.after.output }}"
"#;
    for (verdict, output, statuses) in [
        (
            "malicious",
            json!({"route": "malicious", "block": {"action": "block"}, "close": "skipped"}),
            // Records are depth first, cases in key order: route, close,
            // block, tell, triage, after.
            [
                "succeeded",
                "skipped",
                "succeeded",
                "succeeded",
                "skipped",
                "succeeded",
            ],
        ),
        (
            "weird",
            json!({"route": "weird", "block": null, "close": "skipped"}),
            [
                "succeeded",
                "skipped",
                "skipped",
                "skipped",
                "succeeded",
                "succeeded",
            ],
        ),
    ] {
        let playbook = Playbook::parse(Path::new("t.yaml"), source).unwrap();
        assert!(playbook.validate(&Default::default()).is_empty());
        let plugins = Scripted::new(vec![]);
        let store = Memory::default();
        let run = Runner::new(&plugins, &store)
            .run(&playbook, &json!({ "verdict": verdict }))
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        assert_eq!(run.output, output);
        let got: Vec<&str> = run.steps.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(
            got,
            statuses,
            "{verdict}: {:?}",
            run.steps.iter().map(|s| &s.id).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn for_each_concurrency_is_a_sliding_window() {
    let source = "name: t\nsteps:\n  - id: each\n    for_each: \"{{ [0, 1, 2, 3, 4] }}\"\n    concurrency: 2\n    uses: p.a\n    with: { n: \"{{ item }}\" }\noutput: \"{{ steps.each.output }}\"\n";
    // Item 0 is slow; the other four go through the second slot meanwhile.
    let answers = (0..5)
        .map(|n| {
            let delay = if n == 0 { 300 } else { 1 };
            (Duration::from_millis(delay), Ok(json!(n)))
        })
        .collect();
    let plugins = Scripted::new(answers);
    let (run, _) = run(source, &plugins).await;
    assert_eq!(run.output, json!([0, 1, 2, 3, 4]));
    let finished: Vec<Value> = plugins.finished.lock().unwrap().clone();
    let order: Vec<&Value> = finished.iter().map(|input| &input["n"]).collect();
    assert_eq!(order, [1, 2, 3, 4, 0]);
    assert_eq!(plugins.most_at_once.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn for_each_concurrency_runs_items_together_in_order() {
    let source = "name: t\nsteps:\n  - id: each\n    for_each: \"{{ [1, 2, 3, 4, 5] }}\"\n    concurrency: 2\n    uses: p.a\n    with: { n: \"{{ item }}\" }\noutput: \"{{ steps.each.output }}\"\n";
    let answers = (1..=5)
        .map(|n| (Duration::from_millis(20), Ok(json!(n * 10))))
        .collect();
    let plugins = Scripted::new(answers);
    let (ran, _) = run(source, &plugins).await;
    assert_eq!(ran.output, json!([10, 20, 30, 40, 50]));
    assert_eq!(ran.steps[0].attempts, 5);
    assert_eq!(plugins.most_at_once.load(Ordering::SeqCst), 2);

    // Without `concurrency`, one at a time.
    let sequential = source.replace("    concurrency: 2\n", "");
    let answers = (1..=5)
        .map(|n| (Duration::from_millis(1), Ok(json!(n))))
        .collect();
    let plugins = Scripted::new(answers);
    run(&sequential, &plugins).await;
    assert_eq!(plugins.most_at_once.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn parallel_steps_all_run_and_fail_stops_the_run() {
    let source = r#"
name: t
steps:
  - id: both
    parallel:
      - { id: a, uses: p.a, with: { n: 1 } }
      - { id: b, set: { y: 2 } }
  - id: stop
    if: "{{ steps.both.output.a.ok }}"
    fail: "enough: {{ steps.b.output.y }}"
  - id: never
    log: unreachable
"#;
    let plugins = Scripted::new(vec![(NOW, Ok(json!({"ok": true})))]);
    let (run, _) = run(source, &plugins).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("step `stop`: failed: enough: 2"));
    assert_eq!(
        run.steps[0].output,
        json!({"a": {"ok": true}, "b": {"y": 2}})
    );
    let got: Vec<(&str, &str)> = run
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("both", "succeeded"),
            ("a", "succeeded"),
            ("b", "succeeded"),
            ("stop", "failed"),
            ("never", "pending")
        ]
    );
}

#[tokio::test]
async fn a_classifying_run_records_its_decision() {
    let source = r#"
name: t
inputs:
  text: { required: true }
steps:
  - id: decide
    set: { label: "{{ 'Spam' if 'sale' in inputs.text else none }}", p: 0.93, by: rules }
classification:
  label: "{{ steps.decide.output.label }}"
  probability: "{{ steps.decide.output.p }}"
  decided_by: "{{ steps.decide.output.by }}"
  text: "{{ inputs.text }}"
"#;
    let playbook = Playbook::parse(Path::new("t.yaml"), source).unwrap();
    let plugins = Scripted::new(vec![]);
    let store = Memory::default();
    let runner = Runner::new(&plugins, &store);
    let run = runner
        .run(&playbook, &json!({"text": "big sale"}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        serde_json::to_value(&run.classification).unwrap(),
        json!({"label": "Spam", "probability": 0.93, "decided_by": "rules", "text": "big sale"})
    );
    // A classifying run that decides nothing has failed.
    let run = runner
        .run(&playbook, &json!({"text": "hello"}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.error.as_deref(),
        Some("classification: `label` gave null, not a label")
    );
    assert_eq!(run.classification, None);
}

#[tokio::test]
async fn a_for_each_over_too_many_items_fails_the_step_before_any_call() {
    let source =
        "name: t\nsteps:\n  - id: each\n    for_each: \"{{ range(6) | list }}\"\n    uses: p.a\n";
    let playbook = Playbook::parse(Path::new("t.yaml"), source).unwrap();
    let plugins = Scripted::new(vec![]);
    let store = Memory::default();
    let run = Runner::new(&plugins, &store)
        .max_items(5)
        .run(&playbook, &json!({}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.error.as_deref(),
        Some(
            "step `each`: invalid-input: `for_each` gave 6 items; a step may have at most 5 ([engine] max_items)"
        )
    );
    assert!(plugins.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_playbook_that_fans_out_into_itself_is_stopped_by_the_run_budget() {
    // Four calls of itself per level: 4^8 runs by depth alone.
    let source = "name: fan\nsteps:\n  - { id: a, playbook: fan, on_error: continue }\n  - { id: b, playbook: fan, on_error: continue }\n  - { id: c, playbook: fan, on_error: continue }\n  - { id: d, playbook: fan, on_error: continue }\n";
    let playbook = Playbook::parse(Path::new("fan.yaml"), source).unwrap();
    let load = |_: &str| Playbook::parse(Path::new("fan.yaml"), source);
    let plugins = Scripted::new(vec![]);
    let store = Memory::default();
    let run = Runner::new(&plugins, &store)
        .playbooks(&load)
        .run(&playbook, &json!({}))
        .await
        .unwrap();
    let started = store
        .events()
        .iter()
        .filter(|e| *e == "run.started")
        .count();
    assert_eq!(
        started,
        super::MAX_CALLED_RUNS + 1,
        "the root and its budget"
    );
    let refused = run.steps.iter().filter_map(|s| s.error.as_ref());
    assert!(
        refused
            .clone()
            .any(|e| e.message.contains("may start at most 256 runs together")),
        "{:?}",
        refused.collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_set_step_per_item_gives_a_row_per_item() {
    let source = "name: t\nsteps:\n  - id: rows\n    for_each: \"{{ ['a', 'b'] }}\"\n    set: { value: \"{{ item }}\", at: \"{{ index }}\" }\n  - id: none\n    for_each: \"{{ [] }}\"\n    set: \"{{ item }}\"\noutput: { rows: \"{{ steps.rows.output }}\", none: \"{{ steps.none.output }}\" }\n";
    let (run, _) = run(source, &Scripted::new(vec![])).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        run.output,
        json!({ "rows": [{ "value": "a", "at": 0 }, { "value": "b", "at": 1 }], "none": [] })
    );
}
