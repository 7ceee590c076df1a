//! Cases through the CLI: open, comment, link, close, list and show; a
//! repeat folded by the store's de-duplication shows as a child; bad input is
//! refused by name.

use aerie_store::{Dedupe, NewCase, Observable, Store, Strategy, WindowFrom};
use serde_json::{Value, json};

use crate::harness::{Ran, Site, run};

fn site() -> Site {
    let site = Site::new();
    site.config("[users.alice]\n[users.bob]\n");
    site
}

fn cases(site: &Site, args: &[&str]) -> Ran {
    run(site.aerie().arg("cases").args(args))
}

fn json_of(ran: &Ran) -> Value {
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    serde_json::from_str(&ran.stdout).unwrap()
}

#[tokio::test]
async fn a_case_is_opened_worked_and_closed_from_the_cli() {
    let site = site();
    let opened = cases(
        &site,
        &[
            "open",
            "--title",
            "Beacon to 203.0.113.9",
            "--type",
            "Investigation",
            "--observable",
            "ip:203.0.113.9",
            "--observable",
            "domain:evil.example",
            "--as",
            "alice",
        ],
    );
    assert_eq!(opened.code, 0, "{}", opened.stderr);
    let first = opened.stdout.trim().to_owned();
    let second = cases(
        &site,
        &[
            "open",
            "--title",
            "Same beacon, other host",
            "--type",
            "Investigation",
            "--as",
            "bob",
        ],
    )
    .stdout
    .trim()
    .to_owned();
    let linked = cases(
        &site,
        &[
            "link", &second, &first, "--reason", "same C2", "--as", "bob",
        ],
    );
    assert_eq!(linked.code, 0, "{}", linked.stderr);
    let commented = cases(
        &site,
        &[
            "comment",
            &first,
            "--text",
            "blocked at the proxy",
            "--as",
            "alice",
        ],
    );
    assert_eq!(commented.code, 0, "{}", commented.stderr);
    let closed = cases(
        &site,
        &[
            "close",
            &first,
            "--resolution",
            "escalated",
            "--as",
            "alice",
        ],
    );
    assert_eq!(closed.code, 0, "{}", closed.stderr);

    let listed = json_of(&cases(&site, &["list", "--json"]));
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "newest first");
    assert_eq!(listed[1]["status"], "closed");
    assert_eq!(listed[1]["type"], "Investigation");
    assert_eq!(listed[1]["parent"], Value::Null);
    assert_eq!(
        listed[0]["links"],
        json!([{ "case": first, "kind": "linked", "reason": "same C2", "direction": "to" }])
    );
    let open = json_of(&cases(&site, &["list", "--status", "open", "--json"]));
    assert_eq!(open.as_array().unwrap().len(), 1);

    let shown = json_of(&cases(&site, &["show", &first, "--json"]));
    assert_eq!(shown["resolution"], "escalated");
    assert_eq!(shown["created_by"], "alice");
    assert_eq!(
        shown["observables"],
        json!([{ "kind": "domain", "value": "evil.example" }, { "kind": "ip", "value": "203.0.113.9" }])
    );
    assert_eq!(shown["comments"][0]["author"], "alice");
    assert_eq!(shown["comments"][0]["text"], "blocked at the proxy");
    let text = cases(&site, &["show", &first]);
    assert!(
        text.stdout
            .contains("Investigation · medium · closed (escalated)")
            && text.stdout.contains("- linked from")
            && text.stdout.contains("alice: blocked at the proxy"),
        "{}",
        text.stdout
    );
    // Each change is in the audit chain, which is intact.
    let verified = run(site.aerie().args(["audit", "verify"]));
    assert_eq!(verified.code, 0, "{}", verified.stderr);
}

#[test]
fn a_case_is_updated_planned_and_closed_as_a_duplicate_from_the_cli() {
    let site = site();
    let open = |title: &str, observable: &str| {
        let ran = cases(
            &site,
            &[
                "open",
                "--title",
                title,
                "--type",
                "Phishing",
                "--observable",
                observable,
                "--tag",
                "mail",
                "--as",
                "alice",
            ],
        );
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        ran.stdout.trim().to_owned()
    };
    let first = open("Invoice lure", "domain:invoice-lure.example");
    let second = open("Invoice lure again", "domain:invoice-lure.example");

    let updated = cases(
        &site,
        &[
            "update",
            &first,
            "--assignee",
            "bob",
            "--severity",
            "high",
            "--tag",
            "mail",
            "--tag",
            "finance",
            "--observable",
            "email:ap@invoice-lure.example",
            "--as",
            "alice",
        ],
    );
    assert_eq!(updated.code, 0, "{}", updated.stderr);
    let added = cases(
        &site,
        &["task", &first, "--add", "Purge the mail", "--as", "alice"],
    );
    assert_eq!(added.code, 0, "{}", added.stderr);
    let done = cases(&site, &["task", &first, "--done", "1", "--as", "bob"]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    let missing = cases(&site, &["task", &first, "--done", "7", "--as", "bob"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("has no task 7"),
        "{}",
        missing.stderr
    );

    let shown = json_of(&cases(&site, &["show", &first, "--json"]));
    assert_eq!(shown["assignee"], "bob");
    assert_eq!(shown["severity"], "high");
    assert_eq!(shown["tags"], json!(["mail", "finance"]));
    assert_eq!(shown["tasks"][0]["done_by"], "bob");
    let text = cases(&site, &["show", &first]).stdout;
    assert!(
        text.contains("- [x] 1. Purge the mail (done by bob"),
        "{text}"
    );

    let similar = json_of(&cases(&site, &["similar", &second, "--json"]));
    assert_eq!(similar[0]["id"], first.as_str());
    let ignored = cases(
        &site,
        &[
            "ignore",
            "domain:invoice-lure.example",
            "--reason",
            "test",
            "--as",
            "alice",
        ],
    );
    assert_eq!(ignored.code, 0, "{}", ignored.stderr);
    let similar = json_of(&cases(&site, &["similar", &second, "--json"]));
    assert_eq!(similar, json!([]));

    let closed = cases(
        &site,
        &[
            "close",
            &second,
            "--resolution",
            "duplicate",
            "--duplicate-of",
            &first,
            "--as",
            "bob",
        ],
    );
    assert_eq!(closed.code, 0, "{}", closed.stderr);
    let shown = json_of(&cases(&site, &["show", &second, "--json"]));
    assert_eq!(shown["status"], "closed");
    assert_eq!(
        shown["links"],
        json!([{ "case": first, "kind": "duplicate", "reason": "closed as its duplicate", "direction": "to" }])
    );
    let verified = run(site.aerie().args(["audit", "verify"]));
    assert_eq!(verified.code, 0, "{}", verified.stderr);
}

#[tokio::test]
async fn a_repeat_folded_as_a_child_shows_under_its_parent() {
    let site = site();
    let store = Store::open(&format!(
        "sqlite://{}",
        site.path().join(".aerie/aerie.db").display()
    ))
    .await
    .unwrap();
    let alert = |ip: &str| NewCase {
        title: "Smart Next Gen alert".to_owned(),
        kind: "Investigation".to_owned(),
        observables: vec![Observable {
            kind: "ip".to_owned(),
            value: ip.to_owned(),
        }],
        ..NewCase::default()
    };
    let key = || {
        Some(Dedupe {
            key: "10.0.0.5|CVE-2024-3400".to_owned(),
            window_ms: 300_000,
            from: WindowFrom::First,
            strategy: Strategy::Child,
            fields: json!({}),
        })
    };
    let now = aerie_engine::epoch_ms();
    let parent = store
        .create_case(alert("10.0.0.5"), key(), "run-1", now)
        .await
        .unwrap();
    let child = store
        .create_case(alert("10.0.0.6"), key(), "run-2", now + 1000)
        .await
        .unwrap();
    drop(store);
    let listed = json_of(&cases(&site, &["list", "--json"]));
    let child_row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == json!(child.id))
        .unwrap();
    assert_eq!(child_row["parent"], json!(parent.id));
    let shown = json_of(&cases(&site, &["show", &parent.id, "--json"]));
    assert_eq!(shown["children"], json!([child.id]));
}

#[test]
fn bad_input_is_refused_by_name() {
    let site = site();
    let stranger = cases(
        &site,
        &[
            "open", "--title", "x", "--type", "Phishing", "--as", "mallory",
        ],
    );
    assert_eq!(stranger.code, 1);
    assert!(
        stranger
            .stderr
            .contains("`mallory` is not a user in [users]"),
        "{}",
        stranger.stderr
    );
    let odd = cases(
        &site,
        &[
            "open",
            "--title",
            "x",
            "--type",
            "Phishing",
            "--observable",
            "ipv4:10.0.0.1",
            "--as",
            "alice",
        ],
    );
    assert_eq!(odd.code, 1);
    assert!(
        odd.stderr.contains("`ipv4` is not a kind of observable"),
        "{}",
        odd.stderr
    );
    let shapeless = cases(
        &site,
        &[
            "open",
            "--title",
            "x",
            "--type",
            "Phishing",
            "--observable",
            "10.0.0.1",
            "--as",
            "alice",
        ],
    );
    assert!(
        shapeless.stderr.contains("give KIND:VALUE"),
        "{}",
        shapeless.stderr
    );
    let unknown = cases(
        &site,
        &["close", "nope", "--resolution", "benign", "--as", "alice"],
    );
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no case `nope`"),
        "{}",
        unknown.stderr
    );
    let missing = cases(&site, &["show", "nope"]);
    assert!(
        missing.stderr.contains("no case `nope`"),
        "{}",
        missing.stderr
    );
    let listed = json_of(&cases(&site, &["list", "--json"]));
    assert_eq!(listed, json!([]));
}

const ALERT_PLAYBOOK: &str = r#"
name: vpn-brute-force
inputs:
  user: { type: string }
  src_ip: { type: string }
steps:
  - id: open
    uses: case.create
    with:
      title: "VPN brute force against {{ inputs.user }}"
      type: Investigation
      severity: high
      observables:
        - { kind: user, value: "{{ inputs.user }}" }
        - { kind: ip, value: "{{ inputs.src_ip }}" }
      dedupe:
        key: "{{ inputs.user }}|vpn"
        window: 5m
        window_from: last
        strategy: drop_and_comment
  - id: checklist
    if: "{{ steps.open.output.created }}"
    uses: case.task
    with: { id: "{{ steps.open.output.id }}", title: "Reset the password" }
  - id: note
    uses: case.comment
    with: { id: "{{ steps.open.output.id }}", text: "seen from {{ inputs.src_ip }}" }
output:
  case: "{{ steps.open.output.id }}"
  created: "{{ steps.open.output.created }}"
"#;

#[test]
fn a_playbook_opens_a_case_and_its_repeat_from_a_new_ip_folds_into_it() {
    let site = site();
    site.file("vpn.yaml", ALERT_PLAYBOOK);
    let attempt = |ip: &str| {
        let ran = run(site
            .aerie()
            .args(["run", "vpn.yaml", "--json", "--input"])
            .arg(format!(r#"{{"user": "jdoe", "src_ip": "{ip}"}}"#)));
        json_of(&ran)
    };
    let first = attempt("198.51.100.7");
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["output"]["created"], true);
    // The login name is the key: a new source address is the same attack.
    let second = attempt("203.0.113.44");
    assert_eq!(second["output"]["created"], false, "{second}");
    assert_eq!(second["output"]["case"], first["output"]["case"]);

    let id = first["output"]["case"].as_str().unwrap();
    let shown = json_of(&cases(&site, &["show", id, "--json"]));
    assert_eq!(
        shown["created_by"],
        json!(format!("run:{}", first["id"].as_str().unwrap()))
    );
    assert_eq!(shown["run"], first["id"]);
    assert_eq!(shown["tasks"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown["tasks"][0]["title"], "Reset the password");
    let comments: Vec<&str> = shown["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(comments.len(), 3, "{comments:?}");
    assert_eq!(comments[0], "seen from 198.51.100.7");
    assert!(comments[1].starts_with("Repeated at "), "{}", comments[1]);
    assert_eq!(comments[2], "seen from 203.0.113.44");
    let listed = json_of(&cases(&site, &["list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn a_case_action_with_a_bad_input_fails_its_step_by_name() {
    let site = site();
    site.file(
        "bad.yaml",
        "name: bad\nsteps:\n  - id: open\n    uses: case.create\n    with: { title: x, type: Investigation, dedupe: { key: k, window: soon } }\n",
    );
    let ran = run(site.aerie().args(["run", "bad.yaml", "--json"]));
    let out: Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|_| panic!("{}", ran.stderr));
    assert_eq!(out["status"], "failed", "{out}");
    let message = out["steps"][0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`dedupe.window: soon` is not a duration"),
        "{message}"
    );
    assert!(
        json_of(&cases(&site, &["list", "--json"]))
            .as_array()
            .unwrap()
            .is_empty()
    );

    site.file(
        "unknown.yaml",
        "name: unknown\nsteps:\n  - id: open\n    uses: case.reopen\n    with: {}\n",
    );
    let ran = run(site.aerie().args(["playbook", "validate", "unknown.yaml"]));
    assert_ne!(ran.code, 0);
    assert!(ran.stderr.contains("reopen"), "{}", ran.stderr);
}

#[test]
fn cases_opened_without_an_assignee_follow_the_sites_rules() {
    let site = Site::new();
    site.config(
        "[users.alice]\ngroups = [\"tier1\"]\n[users.bob]\ngroups = [\"tier1\"]\n[users.pat]\n\n\
         [[cases.assign]]\ntype = \"Phishing\"\nto = \"pat\"\n\n[[cases.assign]]\nround_robin = \"tier1\"\n",
    );
    let open = |kind: &str| {
        let opened = cases(
            &site,
            &["open", "--title", "x", "--type", kind, "--as", "pat"],
        );
        assert_eq!(opened.code, 0, "{}", opened.stderr);
        let shown = json_of(&cases(&site, &["show", opened.stdout.trim(), "--json"]));
        shown["assignee"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(open("Phishing"), "pat");
    assert_eq!(
        [open("Malware"), open("Malware"), open("Malware")],
        ["alice", "bob", "alice"]
    );

    // A rule that cannot be followed stops the command, naming the rule.
    site.config("[users.alice]\n[[cases.assign]]\nround_robin = \"nobody\"\n");
    let refused = cases(&site, &["list"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("cases.assign[0]: group `nobody` has no members"),
        "{}",
        refused.stderr
    );
    site.config("[users.alice]\n[[cases.assign]]\nto = \"mallory\"\n");
    let refused = cases(&site, &["list"]);
    assert!(
        refused.stderr.contains("cases.assign[0].to")
            && refused.stderr.contains("`mallory` is not a user"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_case_opened_by_hand_folds_by_its_dedupe_key_as_a_playbooks_does() {
    let site = site();
    let open = |title: &str, extra: &[&str]| {
        let mut args = vec![
            "open",
            "--title",
            title,
            "--type",
            "Investigation",
            "--observable",
            "user:jdoe",
            "--as",
            "alice",
        ];
        args.extend_from_slice(extra);
        cases(&site, &args)
    };
    let key = [
        "--dedupe-key",
        "jdoe|vpn",
        "--window",
        "5m",
        "--window-from",
        "last",
    ];
    let first = open("VPN brute force against jdoe", &key);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let first = first.stdout.trim().to_owned();
    let again = open("VPN brute force against jdoe, new source", &key);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.stdout.trim(),
        format!("{first}  (a repeat: folded into it by drop_and_comment)")
    );
    let child = open(
        "and again",
        &[&key[..], &["--strategy", "child", "--json"]].concat(),
    );
    let child = json_of(&child);
    assert_eq!(
        (child["created"].as_bool(), child["duplicate_of"].as_str()),
        (Some(true), Some(first.as_str()))
    );
    let shown = json_of(&cases(&site, &["show", &first, "--json"]));
    assert_eq!(shown["children"], json!([child["id"]]));
    assert!(
        shown["comments"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Repeated at")
    );

    let nothing = open("x", &["--dedupe-key", " | ", "--window", "5m"]);
    assert_eq!(nothing.code, 1);
    assert!(
        nothing.stderr.contains("the dedupe key rendered empty"),
        "{}",
        nothing.stderr
    );
    let bad = open(
        "x",
        &["--dedupe-key", "k", "--window", "5m", "--strategy", "merge"],
    );
    assert!(
        bad.stderr.contains("`merge` is not a dedupe strategy"),
        "{}",
        bad.stderr
    );
}

/// A process that died after its case actions were written but before their
/// steps were recorded leaves exactly this state; resuming runs the steps
/// again, and each gets its first answer instead of a second case or comment.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_resumed_after_its_case_writes_opens_no_second_case() {
    let site = site();
    site.file(
        "open.yaml",
        r#"name: open
steps:
  - id: open
    uses: case.create
    with: { title: "Beacon", type: Investigation, observables: [{ kind: ip, value: "203.0.113.9" }] }
  - id: note
    uses: case.comment
    with: { id: "{{ steps.open.output.id }}", text: "enriched" }
output: "{{ steps.open.output.id }}"
"#,
    );
    let ran = run(site.aerie().args(["run", "open.yaml", "--json"]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let first: Value = serde_json::from_str(&ran.stdout).unwrap();
    let (run_id, case) = (first["id"].as_str().unwrap(), first["output"].clone());

    let mut conn = site.tamper().await;
    sqlx::query("UPDATE runs SET status = 'running', output = NULL, finished_at = NULL, lease_owner = 'died', lease_until = 0 WHERE id = $1")
        .bind(run_id)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE steps SET status = 'running', output = NULL, finished_at = NULL WHERE run_id = $1",
    )
    .bind(run_id)
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);

    let resumed = run(site.aerie().args(["runs", "resume", run_id]));
    assert_eq!(resumed.code, 0, "{}{}", resumed.stdout, resumed.stderr);
    let shown = json_of(&cases(&site, &["show", case.as_str().unwrap(), "--json"]));
    assert_eq!(shown["comments"].as_array().unwrap().len(), 1, "{shown}");
    let listed = json_of(&cases(&site, &["list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let again = json_of(&run(site.aerie().args(["runs", "show", run_id, "--json"])));
    assert_eq!(
        (again["status"].as_str(), &again["output"]),
        (Some("succeeded"), &case)
    );
}
