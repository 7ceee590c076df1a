//! Human approvals: a run waits, outlives the process that started it, and goes
//! on when enough listed approvers decide — or when its timeout passes.

use serde_json::{Value, json};

use crate::harness::{Ran, Site, run};

const USERS: &str = r#"
[users.alice]
[users.bob]
groups = ["soc-leads"]
[users.carol]
groups = ["soc-leads"]
[users.mallory]
groups = ["interns"]
"#;

fn playbook(required: u32, extra: &str) -> String {
    format!(
        r#"name: review
inputs:
  text: {{ required: true }}
steps:
  - id: iocs
    uses: ioc-extract.extract
    with: {{ text: "{{{{ inputs.text }}}}" }}
  - id: review
    approval:
      message: "Block {{{{ steps.iocs.output.ipv4 | join(', ') }}}}?"
      approvers: [alice, soc-leads]
      required: {required}
{extra}  - id: after
    set: {{ approved: "{{{{ steps.review.output.approved }}}}" }}
output: "{{{{ steps.review.output }}}}"
"#
    )
}

fn site(required: u32, extra: &str) -> Site {
    let site = Site::new();
    site.shipped("ioc-extract").config(USERS);
    site.file("review.yaml", &playbook(required, extra));
    site
}

fn aerie(site: &Site, args: &[&str]) -> Ran {
    run(site.aerie().args(args))
}

/// Starts a run that stops at the approval; returns the run and approval ids.
fn start(site: &Site) -> (String, String) {
    let ran = aerie(
        site,
        &[
            "run",
            "review.yaml",
            "--json",
            "--input",
            r#"{"text": "beacon 10.0.0.1"}"#,
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(out["status"], "waiting");
    assert_eq!(out["steps"][1]["status"], "waiting");
    let list: Value =
        serde_json::from_str(&aerie(site, &["approvals", "list", "--json"]).stdout).unwrap();
    assert_eq!(list[0]["message"], "Block 10.0.0.1?");
    (
        out["id"].as_str().unwrap().to_owned(),
        list[0]["id"].as_str().unwrap().to_owned(),
    )
}

fn show(site: &Site, run_id: &str) -> Value {
    serde_json::from_str(&aerie(site, &["runs", "show", run_id, "--json"]).stdout).unwrap()
}

#[test]
fn two_of_the_listed_approvers_let_the_run_go_on() {
    let site = site(2, "");
    let (run_id, id) = start(&site);

    let ran = aerie(&site, &["approvals", "approve", &id, "--as", "mallory"]);
    assert_eq!(ran.code, 1);
    assert_eq!(
        ran.stderr.trim(),
        format!(
            "aerie: mallory may not decide approval `{id}`: the approvers are alice, soc-leads"
        )
    );
    let ran = aerie(&site, &["approvals", "approve", &id, "--as", "eve"]);
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (1, "aerie: `eve` is not a user in [users] of the config")
    );

    let ran = aerie(
        &site,
        &[
            "approvals",
            "approve",
            &id,
            "--as",
            "alice",
            "--comment",
            "looks bad",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("it needs more approvals"),
        "{}",
        ran.stdout
    );
    let ran = aerie(&site, &["approvals", "approve", &id, "--as", "alice"]);
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (
            1,
            format!("aerie: alice has already decided approval `{id}`").as_str()
        )
    );
    assert_eq!(show(&site, &run_id)["status"], "waiting");

    // bob is in soc-leads: the second distinct approver.
    let ran = aerie(
        &site,
        &[
            "approvals",
            "approve",
            &id,
            "--as",
            "bob",
            "--comment",
            "block it",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let run = show(&site, &run_id);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(
        run["output"],
        json!({"approved": true, "decided_by": ["alice", "bob"], "comment": "block it"})
    );
    assert_eq!(
        run["steps"][0]["attempts"], 1,
        "the step before the approval ran once"
    );
    assert_eq!(
        aerie(&site, &["approvals", "list"]).stdout.trim(),
        "no pending approvals"
    );

    let ran = aerie(&site, &["approvals", "reject", &id, "--as", "carol"]);
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (
            1,
            format!("aerie: approval `{id}` is already approved").as_str()
        )
    );
    assert_eq!(aerie(&site, &["audit", "verify"]).code, 0);
}

#[test]
fn one_rejection_decides() {
    let site = site(2, "");
    let (run_id, id) = start(&site);
    let ran = aerie(
        &site,
        &[
            "approvals",
            "reject",
            &id,
            "--as",
            "carol",
            "--comment",
            "false positive",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let run = show(&site, &run_id);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(
        run["output"],
        json!({"approved": false, "decided_by": ["carol"], "comment": "false positive"})
    );
    assert_eq!(run["steps"][2]["output"], json!({"approved": false}));
}

#[test]
fn an_undecided_approval_times_out() {
    let site = site(1, "      timeout: 300ms\n      on_timeout: approve\n");
    let (run_id, _) = start(&site);
    assert_eq!(
        aerie(&site, &["runs", "resume"]).stdout.trim(),
        "no run to resume"
    );
    std::thread::sleep(std::time::Duration::from_millis(400));
    let ran = aerie(&site, &["runs", "resume"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let run = show(&site, &run_id);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(
        run["output"],
        json!({"approved": true, "decided_by": [], "comment": "timed out"})
    );
}

#[test]
fn approvers_must_be_known_users_or_groups() {
    let site = site(1, "");
    std::fs::write(
        site.path().join("review.yaml"),
        playbook(1, "").replace("soc-leads", "soc-lead"),
    )
    .unwrap();
    let ran = aerie(&site, &["playbook", "validate", "review.yaml"]);
    assert_eq!(ran.code, 1);
    insta::assert_snapshot!(ran.stderr.trim(), @"review.yaml:11:26: step `review`: `soc-lead` is neither a user nor a group in aerie.toml");
}
