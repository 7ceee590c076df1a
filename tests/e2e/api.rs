//! The REST API as a script or the web page uses it: start a playbook, find
//! the approval it waits for, decide it as the token's user under the same
//! engine rule the CLI applies.

use serde_json::{Value, json};

use crate::harness::Site;
use crate::served::{Served, finished, get, post_json, request, token};

const REVIEW: &str = r#"name: review
inputs:
  ip: { required: true }
steps:
  - id: review
    approval:
      message: "Block {{ inputs.ip }}?"
      approvers: [alice, soc-leads]
  - id: after
    set: { approved: "{{ steps.review.output.approved }}" }
output: "{{ steps.after.output }}"
"#;

fn site() -> Site {
    let site = Site::new();
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    std::fs::write(site.path().join("playbooks/review.yaml"), REVIEW).unwrap();
    site.config(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[users.alice]\n[users.bob]\ngroups = [\"soc-leads\"]\n[users.mallory]\ngroups = [\"interns\"]\n",
    );
    site
}

async fn post(served: &Served, path: &str, token: &str, body: &str) -> crate::served::Answer {
    let auth = format!("Bearer {token}");
    post_json(served.addr, path, &[("authorization", &auth)], body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_started_through_the_api_is_approved_by_an_allowed_user_only() {
    let site = site();
    let served = Served::start(&site, &[]);
    let (alice, mallory, stranger) = (
        token(&site, "alice"),
        token(&site, "mallory"),
        token(&site, "nobody"),
    );

    let listed = get(served.addr, "/api/v1/playbooks", Some(&alice)).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["playbooks"][0]["name"], "review");
    assert_eq!(
        listed.body["playbooks"][0]["inputs"]["ip"]["required"],
        true
    );

    // Bad input is refused before anything is stored, naming what is wrong.
    let missing = post(
        &served,
        "/api/v1/playbooks/review/runs",
        &alice,
        r#"{"input": {}}"#,
    )
    .await;
    assert_eq!(missing.status, 400);
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input `ip` is required"),
        "{:?}",
        missing.body
    );
    let malformed = post(
        &served,
        "/api/v1/playbooks/review/runs",
        &alice,
        r#"{"inptu": {}}"#,
    )
    .await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("inptu"),
        "{:?}",
        malformed.body
    );
    assert_eq!(
        post(&served, "/api/v1/playbooks/nope/runs", &alice, "{}")
            .await
            .status,
        404
    );
    let unauthenticated = post_json(served.addr, "/api/v1/playbooks/review/runs", &[], "{}").await;
    assert_eq!(unauthenticated.status, 401);

    let started = post(
        &served,
        "/api/v1/playbooks/review/runs",
        &alice,
        r#"{"input": {"ip": "203.0.113.8"}}"#,
    )
    .await;
    assert_eq!(started.status, 202, "{:?}", started.body);
    let id = started.body["run"].as_str().unwrap().to_owned();
    let waiting = finished(served.addr, &alice, &id).await;
    assert_eq!(waiting["status"], "waiting");

    let pending = get(served.addr, "/api/v1/approvals", Some(&alice)).await;
    let approval = pending.body["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["run_id"] == id.as_str())
        .cloned()
        .expect("the run's approval is not listed");
    assert_eq!(approval["message"], "Block 203.0.113.8?");
    let approve = format!(
        "/api/v1/approvals/{}/approve",
        approval["id"].as_str().unwrap()
    );

    // Not an approver, not a configured user: refused, and nothing decided.
    let refused = post(&served, &approve, &mallory, r#"{"comment": "sure"}"#).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "forbidden"),
        "{:?}",
        refused.body
    );
    let unknown = post(&served, &approve, &stranger, "{}").await;
    assert_eq!(unknown.status, 403, "{:?}", unknown.body);
    assert_eq!(
        get(served.addr, &format!("/api/v1/runs/{id}"), Some(&alice))
            .await
            .body["status"],
        "waiting"
    );

    let decided = post(&served, &approve, &alice, r#"{"comment": "block it"}"#).await;
    assert_eq!(decided.status, 200, "{:?}", decided.body);
    assert_eq!(
        decided.body,
        json!({ "approval": approval["id"], "settled": true, "run": id })
    );
    let twice = post(&served, &approve, &alice, "{}").await;
    assert_eq!(twice.status, 409);

    let run: Value = loop {
        let run = finished(served.addr, &alice, &id).await;
        if run["status"] != "waiting" {
            break run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"], json!({ "approved": true }));
    // The audit names who decided.
    let audit = site
        .aerie()
        .args(["audit", "export", "--run", &id, "--format", "json"])
        .output()
        .unwrap();
    let audit: Value = serde_json::from_slice(&audit.stdout).unwrap();
    let decided_by: Vec<&Value> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "approval.decided")
        .map(|e| &e["body"]["user"])
        .collect();
    assert_eq!(decided_by, [&json!("alice")]);
    // The API exports the same entries, and checks the chain as the CLI does.
    let exported = get(
        served.addr,
        &format!("/api/v1/runs/{id}/audit"),
        Some(&alice),
    )
    .await;
    assert_eq!(exported.status, 200, "{:?}", exported.body);
    assert_eq!(exported.body["audit"], audit["audit"]);
    let verified = get(served.addr, "/api/v1/audit/verify", Some(&alice)).await;
    assert_eq!(verified.body["intact"], true, "{:?}", verified.body);
    assert!(
        verified.body["summary"]
            .as_str()
            .unwrap()
            .starts_with("audit trail intact: "),
        "{:?}",
        verified.body
    );
    let requests = get(
        served.addr,
        &format!("/api/v1/runs/{id}/requests"),
        Some(&alice),
    )
    .await;
    assert_eq!(requests.body["requests"], json!([]), "{:?}", requests.body);
    assert_eq!(
        get(served.addr, "/api/v1/runs/nope/audit", Some(&alice))
            .await
            .status,
        404
    );
    assert_eq!(
        get(served.addr, "/api/v1/audit/verify", None).await.status,
        401
    );
    // The OpenAPI document, and every path in it routed (a documented path
    // the router lacks would answer 404 or 405).
    let doc = get(served.addr, "/api/v1/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["info"]["title"], "aerie");
    let auth = format!("Bearer {alice}");
    for (path, methods) in doc.body["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", &id).replace("{name}", "review");
        for method in methods.as_object().unwrap().keys() {
            let answer = request(
                served.addr,
                &method.to_uppercase(),
                &concrete,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                "{}",
            )
            .await;
            let message = answer.body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                answer.body["error"]["code"] != "method_not_allowed"
                    && !message.starts_with("nothing is served at"),
                "{method} {path}: {} {:?}",
                answer.status,
                answer.body
            );
        }
    }
    let wrong_method = request(served.addr, "DELETE", "/api/v1/runs", &[], "").await;
    assert_eq!(wrong_method.status, 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_config_the_shipped_playbooks_are_served() {
    let site = Site::new();
    let installed = site.shipped_all();
    let folder = site.path().join("playbooks");
    std::fs::create_dir_all(&folder).unwrap();
    let shipped = crate::harness::repo().join("playbooks");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&shipped).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, folder.join(entry.file_name())).unwrap();
            names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    // Its classifier has no model and no rules until the site sets them; the
    // enrichment service needs the site's Jira, CAPE and SIEM.
    names.retain(|n| n != "recategorise-email" && n != "enrichment-only");
    names.sort();
    assert!(!site.path().join("aerie.toml").exists());
    let served = Served::start_with(&site, &["--listen", "127.0.0.1:0"], &[]);
    let alice = token(&site, "alice");
    let listed = get(served.addr, "/api/v1/playbooks", Some(&alice)).await;
    let mut served_names: Vec<String> = listed.body["playbooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    served_names.sort();
    assert_eq!(served_names, names);
    // A text with no indicator looks nothing up: no network needed.
    let started = post(
        &served,
        "/api/v1/playbooks/enrich-ioc/runs",
        &alice,
        r#"{"input": {"text": "nothing to see"}}"#,
    )
    .await;
    assert_eq!(started.status, 202, "{:?}", started.body);
    let run = finished(served.addr, &alice, started.body["run"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(site.path().join(".aerie/aerie.db").is_file());

    // The plugins, as `aerie plugin list/inspect --json` show them.
    let plugins = get(served.addr, "/api/v1/plugins", Some(&alice)).await;
    assert_eq!(plugins.status, 200, "{:?}", plugins.body);
    let listed: Vec<&str> = plugins.body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, installed);
    let ioc = get(served.addr, "/api/v1/plugins/ioc-extract", Some(&alice)).await;
    assert_eq!(ioc.status, 200, "{:?}", ioc.body);
    assert_eq!(ioc.body["actions"][0]["name"], "extract");
    assert_eq!(ioc.body["sha256"].as_str().unwrap().len(), 64);
    let inspected = site
        .aerie()
        .args(["plugin", "inspect", "ioc-extract", "--json"])
        .output()
        .unwrap();
    let inspected: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(ioc.body, inspected);
    assert_eq!(
        get(served.addr, "/api/v1/plugins/nope", Some(&alice))
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_posted_playbook_is_validated_against_what_the_server_has() {
    let site = site();
    site.shipped("ioc-extract");
    let served = Served::start(&site, &[]);
    let alice = token(&site, "alice");
    let auth = format!("Bearer {alice}");
    let yaml = [
        ("authorization", auth.as_str()),
        ("content-type", "application/yaml"),
    ];
    let validate = |body: &'static str| {
        let headers = yaml;
        async move {
            request(
                served.addr,
                "POST",
                "/api/v1/playbooks/validate",
                &headers,
                body,
            )
            .await
        }
    };

    let good = r#"name: triage
inputs:
  text: { required: true }
steps:
  - id: iocs
    uses: ioc-extract.extract
    with: { text: "{{ inputs.text }}" }
  - id: ask
    approval: { message: "Block?", approvers: [soc-leads] }
  - id: again
    playbook: review
    with: { ip: "{{ steps.iocs.output.ipv4[0] }}" }
"#;
    let answer = validate(good).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        answer.body,
        json!({ "valid": true, "name": "triage", "errors": [] })
    );

    // What only this site knows is checked too: its plugins' actions, its
    // people, its playbooks; every problem listed with its place.
    let bad = r#"name: triage
steps:
  - id: iocs
    uses: ioc-extract.nope
  - id: ask
    approval: { message: "Block?", approvers: [nobody] }
  - id: again
    playbook: missing
"#;
    let answer = validate(bad).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["valid"], false);
    let errors = answer.body["errors"].as_array().unwrap();
    let line_of = |needle: &str| {
        errors
            .iter()
            .find(|e| e["message"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no error names `{needle}`: {errors:?}"))["line"]
            .clone()
    };
    assert_eq!(line_of("nope"), 4);
    assert_eq!(line_of("nobody"), 6);
    assert_eq!(line_of("missing"), 8);

    let unreadable = validate("steps: [").await;
    assert_eq!(unreadable.body["valid"], false);
    assert_eq!(unreadable.body["name"], Value::Null);
    assert!(
        !unreadable.body["errors"].as_array().unwrap().is_empty(),
        "{:?}",
        unreadable.body
    );

    // Nothing was stored or served: the list is what the folder holds.
    let listed = get(served.addr, "/api/v1/playbooks", Some(&alice)).await;
    let names: Vec<&str> = listed.body["playbooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["review"]);

    let binary = request(
        served.addr,
        "POST",
        "/api/v1/playbooks/validate",
        &yaml,
        &b"name: \xff\n"[..],
    )
    .await;
    assert_eq!(binary.status, 400);
    assert!(
        binary.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8"),
        "{:?}",
        binary.body
    );
    let anonymous = request(
        served.addr,
        "POST",
        "/api/v1/playbooks/validate",
        &[("content-type", "application/yaml")],
        good,
    )
    .await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_past_its_deadline_is_decided_by_the_server_unasked() {
    let site = site();
    let timed = REVIEW.replace(
        "      approvers: [alice, soc-leads]\n",
        "      approvers: [alice, soc-leads]\n      timeout: 1s\n      on_timeout: reject\n",
    );
    std::fs::write(site.path().join("playbooks/review.yaml"), timed).unwrap();
    let served = Served::start(&site, &[]);
    let alice = token(&site, "alice");
    let started = post(
        &served,
        "/api/v1/playbooks/review/runs",
        &alice,
        r#"{"input": {"ip": "203.0.113.7"}}"#,
    )
    .await;
    assert_eq!(started.status, 202, "{:?}", started.body);
    let id = started.body["run"].as_str().unwrap().to_owned();
    assert_eq!(
        finished(served.addr, &alice, &id).await["status"],
        "waiting"
    );
    // Nobody looks at the approvals (listing them would decide it too): the
    // server's own timer does, and a worker finishes the run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let run = loop {
        let run = get(served.addr, &format!("/api/v1/runs/{id}"), Some(&alice)).await;
        if run.body["status"] != "waiting" {
            break run.body;
        }
        assert!(std::time::Instant::now() < deadline, "still waiting");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let run = if run["status"] == "running" {
        finished(served.addr, &alice, &id).await
    } else {
        run
    };
    assert_eq!(run["status"], "succeeded", "{run:?}");
    assert_eq!(
        run["steps"][0]["output"],
        json!({ "approved": false, "decided_by": [], "comment": "timed out" }),
        "{run:?}"
    );
}
