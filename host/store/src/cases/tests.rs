use serde_json::json;

use super::*;
use crate::StoreError;

const MINUTE: i64 = 60_000;
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

async fn store(dir: &tempfile::TempDir, name: &str) -> Store {
    Store::open(&format!("sqlite://{}", dir.path().join(name).display()))
        .await
        .unwrap()
}

fn alert(title: &str, ip: &str) -> NewCase {
    NewCase {
        title: title.to_owned(),
        kind: "Investigation".to_owned(),
        observables: vec![Observable {
            kind: "ip".to_owned(),
            value: ip.to_owned(),
        }],
        ..NewCase::default()
    }
}

fn dedupe(key: &str, strategy: Strategy, from: WindowFrom) -> Option<Dedupe> {
    Some(Dedupe {
        key: key.to_owned(),
        window_ms: 5 * MINUTE,
        from,
        strategy,
        fields: json!({ "src_ip": "10.0.0.1" }),
    })
}

async fn all(store: &Store) -> Vec<Value> {
    store
        .cases(&CaseFilter {
            limit: 1000,
            ..CaseFilter::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn drop_folds_a_resend_into_the_first_case_and_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, "a.db").await;
    let key = || dedupe("10.0.0.1|CVE-2024-3400", Strategy::Drop, WindowFrom::First);
    let first = store
        .create_case(alert("a", "10.0.0.1"), key(), "run", T0)
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.duplicate_of, None);
    let again = store
        .create_case(alert("a", "10.0.0.1"), key(), "run", T0 + MINUTE)
        .await
        .unwrap();
    assert_eq!(
        again,
        Created {
            id: first.id.clone(),
            created: false,
            duplicate_of: Some(first.id.clone()),
            strategy: Some("drop".to_owned()),
            similar: Vec::new(),
        }
    );
    assert_eq!(all(&store).await.len(), 1);
    let shown = store.case(&first.id).await.unwrap().unwrap();
    assert_eq!(shown["comments"], json!([]));
    // Another key is another case.
    let other = dedupe("10.0.0.1|CVE-2023-4966", Strategy::Drop, WindowFrom::First);
    let other = store
        .create_case(alert("b", "10.0.0.1"), other, "run", T0 + MINUTE)
        .await
        .unwrap();
    assert!(other.created);
    assert_eq!(all(&store).await.len(), 2);
}

#[tokio::test]
async fn drop_and_comment_notes_the_repeat_on_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, "a.db").await;
    let key = || dedupe("alice|vpn", Strategy::DropAndComment, WindowFrom::First);
    let first = store
        .create_case(alert("brute force", "198.51.100.1"), key(), "run", T0)
        .await
        .unwrap();
    let again = store
        .create_case(
            alert("brute force", "198.51.100.2"),
            key(),
            "run",
            T0 + 2 * MINUTE,
        )
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.created),
        (first.id.as_str(), false)
    );
    let shown = store.case(&first.id).await.unwrap().unwrap();
    let text = shown["comments"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("2026-01-01T00:02:00Z")
            && text.contains("alice|vpn")
            && text.contains("10.0.0.1"),
        "{text}"
    );
    assert_eq!(all(&store).await.len(), 1);
}

#[tokio::test]
async fn child_link_and_new_and_note_open_a_case_related_to_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, "a.db").await;
    for (strategy, name) in [
        (Strategy::Child, "child"),
        (Strategy::Link, "link"),
        (Strategy::NewAndNote, "new_and_note"),
    ] {
        let key = || dedupe(name, strategy, WindowFrom::First);
        let first = store
            .create_case(alert("first", "10.0.0.1"), key(), "run", T0)
            .await
            .unwrap();
        let second = store
            .create_case(alert("second", "10.0.0.2"), key(), "run", T0 + MINUTE)
            .await
            .unwrap();
        assert!(second.created, "{name}");
        assert_ne!(second.id, first.id, "{name}");
        assert_eq!(
            second.duplicate_of.as_deref(),
            Some(first.id.as_str()),
            "{name}"
        );
        assert_eq!(second.strategy.as_deref(), Some(name));
        let old = store.case(&first.id).await.unwrap().unwrap();
        let new = store.case(&second.id).await.unwrap().unwrap();
        match strategy {
            Strategy::Child => {
                assert_eq!(new["parent"], json!(first.id));
                assert_eq!(old["children"], json!([second.id]));
                // The parent's observables are the child's too.
                assert_eq!(
                    new["observables"],
                    json!([{ "kind": "ip", "value": "10.0.0.1" }, { "kind": "ip", "value": "10.0.0.2" }])
                );
            }
            Strategy::Link => {
                assert_eq!(new["links"][0]["case"], json!(first.id));
                assert_eq!(new["links"][0]["kind"], "duplicate");
                assert_eq!(old["links"][0]["direction"], "from");
            }
            Strategy::NewAndNote => {
                assert_eq!(old["links"][0]["case"], json!(second.id));
                assert_eq!(old["links"][0]["kind"], "possibly_related");
                let note = old["comments"][0]["text"].as_str().unwrap();
                assert!(
                    note.contains(&second.id) && note.contains("close"),
                    "{note}"
                );
            }
            _ => unreachable!(),
        }
    }
}

#[tokio::test]
async fn a_window_from_the_first_ends_while_a_sliding_gap_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, "a.db").await;
    // Repeats every 4 minutes, a 5-minute window.
    let times = [T0, T0 + 4 * MINUTE, T0 + 8 * MINUTE];
    let mut first_ids = Vec::new();
    let mut last_ids = Vec::new();
    for at in times {
        let first = dedupe("first", Strategy::Drop, WindowFrom::First);
        first_ids.push(
            store
                .create_case(alert("a", "10.0.0.1"), first, "run", at)
                .await
                .unwrap(),
        );
        let last = dedupe("last", Strategy::Drop, WindowFrom::Last);
        last_ids.push(
            store
                .create_case(alert("a", "10.0.0.1"), last, "run", at)
                .await
                .unwrap(),
        );
    }
    // From the first sighting: 8 minutes later is past the window.
    assert!(first_ids[2].created);
    assert_ne!(first_ids[2].id, first_ids[0].id);
    // Sliding: each repeat extended it; still the first case.
    assert!(!last_ids[2].created);
    assert_eq!(last_ids[2].id, last_ids[0].id);
    // A break longer than the window starts a new case ("a 5 min break
    // signifies a new unique alert").
    let later = dedupe("last", Strategy::Drop, WindowFrom::Last);
    let after_break = store
        .create_case(alert("a", "10.0.0.1"), later, "run", T0 + 14 * MINUTE)
        .await
        .unwrap();
    assert!(after_break.created);
    assert_ne!(after_break.id, last_ids[0].id);
}

#[tokio::test]
async fn simultaneous_duplicates_make_one_case_in_one_process_and_across_two() {
    let dir = tempfile::tempdir().unwrap();
    let a = store(&dir, "shared.db").await;
    let b = store(&dir, "shared.db").await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..20 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            let key = dedupe("same", Strategy::Drop, WindowFrom::First);
            store
                .create_case(alert("same", "10.0.0.1"), key, "run", T0)
                .await
                .unwrap()
        });
    }
    let mut created = 0;
    while let Some(outcome) = tasks.join_next().await {
        created += usize::from(outcome.unwrap().created);
    }
    assert_eq!(created, 1);
    assert_eq!(all(&a).await.len(), 1);
}

#[tokio::test]
async fn bad_input_is_refused_by_name_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, "a.db").await;
    let refused = |e: StoreError| match e {
        StoreError::Case(e) => e.to_string(),
        other => panic!("not a case error: {other}"),
    };
    let empty = dedupe("  ", Strategy::Drop, WindowFrom::First);
    let e = store
        .create_case(alert("a", "10.0.0.1"), empty, "run", T0)
        .await
        .unwrap_err();
    assert!(refused(e).contains("dedupe key rendered empty"));
    let mut odd = alert("a", "10.0.0.1");
    odd.observables[0].kind = "ipv4".to_owned();
    let e = store.create_case(odd, None, "run", T0).await.unwrap_err();
    assert!(refused(e).contains("`ipv4` is not a kind of observable"));
    let e = store
        .create_case(alert("", "10.0.0.1"), None, "run", T0)
        .await
        .unwrap_err();
    assert_eq!(refused(e), "a case needs a title");
    assert!(all(&store).await.is_empty());

    let e = store.comment_case("nope", "alice", "hi").await.unwrap_err();
    assert_eq!(refused(e), "no case `nope`");
    let case = store
        .create_case(alert("a", "10.0.0.1"), None, "alice", T0)
        .await
        .unwrap();
    store.close_case(&case.id, "benign", "alice").await.unwrap();
    let e = store
        .close_case(&case.id, "benign", "alice")
        .await
        .unwrap_err();
    assert_eq!(refused(e), format!("case `{}` is closed", case.id));
    let shown = store.case(&case.id).await.unwrap().unwrap();
    assert_eq!(
        (shown["status"].as_str(), shown["resolution"].as_str()),
        (Some("closed"), Some("benign"))
    );
    assert_eq!(
        "fold".parse::<Strategy>().unwrap_err().to_string(),
        "`fold` is not a dedupe strategy: use drop, drop_and_comment, child, link, new_and_note or suggest"
    );
}

#[tokio::test]
async fn every_case_change_is_in_the_audit_chain_with_who_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, "a.db").await;
    let key = || dedupe("k", Strategy::DropAndComment, WindowFrom::First);
    let case = store
        .create_case(alert("a", "10.0.0.1"), key(), "run-7", T0)
        .await
        .unwrap();
    store
        .create_case(alert("a", "10.0.0.1"), key(), "run-8", T0 + 1)
        .await
        .unwrap();
    store
        .comment_case(&case.id, "alice", "looking")
        .await
        .unwrap();
    store.close_case(&case.id, "benign", "alice").await.unwrap();
    let entries = store
        .audit_entries(&format!("case:{}", case.id))
        .await
        .unwrap();
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.kind.as_str(), e.body["by"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("case.created", "run-7"),
            ("case.commented", "run-8"),
            ("case.commented", "alice"),
            ("case.closed", "alice"),
        ]
    );
    assert!(matches!(
        store.verify_audit().await.unwrap(),
        crate::Verification::Intact { .. }
    ));
}

fn holding(title: &str, observables: &[(&str, &str)]) -> NewCase {
    NewCase {
        title: title.to_owned(),
        kind: "Investigation".to_owned(),
        observables: observables
            .iter()
            .map(|(kind, value)| Observable {
                kind: (*kind).to_owned(),
                value: (*value).to_owned(),
            })
            .collect(),
        ..NewCase::default()
    }
}

#[tokio::test]
async fn suggest_attaches_the_cases_sharing_rare_indicators_and_ignores_common_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, "a.db").await;
    let proxy = ("ip", "10.0.0.254");
    // Twenty cases through the proxy: it is in most of them, so it says
    // nothing about which belong together.
    for n in 0..20 {
        let host = format!("ws-{n}");
        store
            .create_case(holding("noise", &[proxy, ("host", &host)]), None, "run", T0)
            .await
            .unwrap();
    }
    let rare = store
        .create_case(
            holding(
                "c2 beacon",
                &[proxy, ("domain", "evil.example"), ("host", "ws-3")],
            ),
            None,
            "run",
            T0,
        )
        .await
        .unwrap();
    let suggest = Some(Dedupe {
        key: "beacon|evil.example".to_owned(),
        window_ms: MINUTE,
        from: WindowFrom::First,
        strategy: Strategy::Suggest,
        fields: json!({}),
    });
    let new = store
        .create_case(
            holding("beacon again", &[proxy, ("domain", "evil.example")]),
            suggest,
            "run",
            T0,
        )
        .await
        .unwrap();
    assert!(new.created);
    assert_eq!(new.strategy.as_deref(), Some("suggest"));
    // Only the case sharing the rare domain is similar; the twenty that
    // share the proxy alone are not. The domain is all that weighs, so the
    // score is 1.
    assert_eq!(new.similar.len(), 1, "{:?}", new.similar);
    assert_eq!(new.similar[0].id, rare.id);
    assert_eq!(new.similar[0].score, 1.0);
    let domain = Observable {
        kind: "domain".to_owned(),
        value: "evil.example".to_owned(),
    };
    assert_eq!(new.similar[0].shared, vec![domain.clone()]);
    let shown = store.case(&new.id).await.unwrap().unwrap();
    let link = &shown["links"][0];
    assert_eq!(link["kind"], "similar");
    assert_eq!(link["case"], json!(rare.id));
    assert!(
        link["reason"]
            .as_str()
            .unwrap()
            .contains("domain evil.example"),
        "{link}"
    );

    // Marked as ignored, the domain counts for nothing either.
    store
        .ignore_observable(&domain, true, Some("sinkhole"), "alice")
        .await
        .unwrap();
    assert!(store.similar_cases(&new.id, 5).await.unwrap().is_empty());
    store
        .ignore_observable(&domain, false, None, "alice")
        .await
        .unwrap();
    assert_eq!(store.similar_cases(&new.id, 5).await.unwrap().len(), 1);
}

#[tokio::test]
async fn tasks_updates_and_a_replayed_step_change_the_case_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, "a.db").await;
    let case = store
        .create_case(alert("lost laptop", "10.0.0.1"), None, "alice", T0)
        .await
        .unwrap();
    let add = CaseChange::AddTask {
        id: case.id.clone(),
        title: "wipe the device".to_owned(),
    };
    let origin = Some("run-1/checklist/0");
    let first = store.change_case(add.clone(), "run", origin).await.unwrap();
    // The same step resumed after a crash: the same answer, no second task.
    let again = store.change_case(add.clone(), "run", origin).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first["task"], 1);
    let second = store.change_case(add, "run", None).await.unwrap();
    assert_eq!(second["task"], 2);
    let done = CaseChange::Task {
        id: case.id.clone(),
        task: 1,
        done: true,
    };
    store.change_case(done, "bob", None).await.unwrap();
    let missing = CaseChange::Task {
        id: case.id.clone(),
        task: 9,
        done: true,
    };
    let e = store.change_case(missing, "bob", None).await.unwrap_err();
    assert!(e.to_string().contains("no task 9"), "{e}");

    let update = CaseChange::Update {
        id: case.id.clone(),
        update: CaseUpdate {
            severity: Some("high".to_owned()),
            assignee: Some(Some("bob".to_owned())),
            observables: vec![Observable {
                kind: "host".to_owned(),
                value: "lt-042".to_owned(),
            }],
            ..CaseUpdate::default()
        },
    };
    let changed = store.change_case(update, "alice", None).await.unwrap();
    assert_eq!(
        changed["changed"],
        json!(["severity", "assignee", "observables"])
    );
    let shown = store.case(&case.id).await.unwrap().unwrap();
    assert_eq!(shown["severity"], "high");
    assert_eq!(shown["assignee"], "bob");
    assert_eq!(shown["title"], "lost laptop");
    assert_eq!(shown["observables"].as_array().unwrap().len(), 2);
    assert_eq!(shown["tasks"][0]["done"], true);
    assert_eq!(shown["tasks"][0]["done_by"], "bob");
    assert_eq!(shown["tasks"][1]["done"], false);

    let host = Observable {
        kind: "host".to_owned(),
        value: "lt-042".to_owned(),
    };
    let find = |kind: Option<&str>, within: Option<i64>| Find::Observable {
        observable: host.clone(),
        kind: kind.map(str::to_owned),
        closed_within_ms: within,
        now_ms: aerie_engine::epoch_ms(),
    };
    assert_eq!(store.find_cases(&find(None, None)).await.unwrap().len(), 1);
    assert!(
        store
            .find_cases(&find(Some("Enrichment"), None))
            .await
            .unwrap()
            .is_empty()
    );
    store.close_case(&case.id, "benign", "alice").await.unwrap();
    // Closed: found only when recently closed cases are asked for.
    assert!(
        store
            .find_cases(&find(None, None))
            .await
            .unwrap()
            .is_empty()
    );
    let recent = store
        .find_cases(&find(None, Some(60 * MINUTE)))
        .await
        .unwrap();
    assert_eq!(recent[0]["status"], "closed");
    let e = store
        .change_case(
            CaseChange::AddTask {
                id: case.id.clone(),
                title: "more".to_owned(),
            },
            "bob",
            None,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is closed"), "{e}");
}

#[tokio::test]
async fn new_cases_are_assigned_by_the_first_matching_rule_and_turns_are_shared() {
    let dir = tempfile::tempdir().unwrap();
    let rules = || {
        aerie_engine::Assignment::new(&[
            aerie_engine::RuleSpec {
                kind: Some("Phishing"),
                to: Some("pat"),
                ..Default::default()
            },
            aerie_engine::RuleSpec {
                hours: Some("00:00-12:00"),
                round_robin: Some("day"),
                members: vec!["bob".to_owned(), "alice".to_owned()],
                ..Default::default()
            },
        ])
        .unwrap()
    };
    // Two servers on one store take turns together.
    let (a, b) = (
        store(&dir, "one.db").await.with_assignment(rules()),
        store(&dir, "one.db").await.with_assignment(rules()),
    );
    let open = |store: &Store, case: NewCase, dedupe: Option<Dedupe>, at: i64| {
        let store = store.clone();
        async move {
            let created = store.create_case(case, dedupe, "run-1", at).await.unwrap();
            let case = store.case(&created.id).await.unwrap().unwrap();
            case["assignee"].as_str().map(str::to_owned)
        }
    };
    let morning = T0 + 9 * 60 * MINUTE;
    let mut turns = Vec::new();
    for (i, store) in [&a, &b, &a, &b].into_iter().enumerate() {
        turns.push(
            open(
                store,
                alert(&format!("scan {i}"), "10.0.0.9"),
                None,
                morning,
            )
            .await,
        );
    }
    assert_eq!(
        turns,
        [Some("alice"), Some("bob"), Some("alice"), Some("bob")].map(|u| u.map(str::to_owned))
    );

    // A repeat folded into its case opens nothing and takes no turn.
    let key = || dedupe("10.0.0.9|scan", Strategy::Drop, WindowFrom::First);
    open(&a, alert("scan", "10.0.0.9"), key(), morning).await;
    let dropped = a
        .create_case(alert("scan", "10.0.0.9"), key(), "run-2", morning + MINUTE)
        .await
        .unwrap();
    assert!(!dropped.created);
    assert_eq!(
        open(&b, alert("next", "10.0.0.9"), None, morning)
            .await
            .as_deref(),
        Some("bob")
    );

    // By type first; out of hours no rule matches; an assignee given is kept.
    let phish = NewCase {
        kind: "phishing".to_owned(),
        ..alert("lure", "10.0.0.7")
    };
    assert_eq!(open(&a, phish, None, morning).await.as_deref(), Some("pat"));
    assert_eq!(
        open(&a, alert("late", "10.0.0.8"), None, T0 + 20 * 60 * MINUTE).await,
        None
    );
    let given = NewCase {
        assignee: Some("carol".to_owned()),
        ..alert("mine", "10.0.0.6")
    };
    assert_eq!(
        open(&b, given, None, morning).await.as_deref(),
        Some("carol")
    );
}

/// With SQLite's own checkpoints off (they stalled a commit every few
/// hundred), the writer's checkpoints still copy the log into the database
/// file: it grows while the store is open, not only when it closes.
#[tokio::test]
async fn the_write_ahead_log_is_checkpointed_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, "wal.db").await;
    let file = dir.path().join("wal.db");
    let before = std::fs::metadata(&file).unwrap().len();
    for i in 0..300 {
        let case = NewCase {
            description: "x".repeat(2000),
            ..alert(&format!("case {i}"), "10.0.0.1")
        };
        store.create_case(case, None, "test", T0).await.unwrap();
    }
    // The next commit a second later starts a checkpoint beside the writer.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    store
        .create_case(alert("last", "10.0.0.2"), None, "test", T0)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&file).unwrap().len() < before + 500_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file never grew past {before} bytes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
