//! What a plugin logs during a run is kept with the run's steps (secrets
//! redacted, a bounded number of lines per step, the rest counted), and shown
//! by `aerie runs show` and the audit export.

use serde_json::Value;

use crate::harness::{Site, run};

const SECRET: &str = "s3cr3t-0f-the-log-test";

const PLAYBOOK: &str = r#"name: chatty
inputs:
  secret: { required: true }
steps:
  - id: talk
    uses: hostile.log
    with: { lines: 600, message: "hello" }
  - id: leak
    uses: hostile.log
    with: { lines: 2, message: "the key is {{ inputs.secret }}" }
"#;

#[test]
fn plugin_logs_are_kept_with_the_run_up_to_a_cap_per_step() {
    let site = Site::new();
    site.hostile("hostile", |m| m)
        .config("[plugins.hostile]\ncredentials.api_key = { env = \"LOG_TEST_KEY\" }\n");
    site.file("chatty.yaml", PLAYBOOK);
    let aerie = |args: &[&str]| {
        let mut command = site.aerie();
        command.args(args).env("LOG_TEST_KEY", SECRET);
        run(&mut command)
    };
    let input = format!(r#"{{"secret": "{SECRET}"}}"#);
    let ran = aerie(&["run", "chatty.yaml", "--input", &input, "--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let id = serde_json::from_str::<Value>(&ran.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let shown = aerie(&["runs", "show", &id, "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    let talk = &shown["steps"][0];
    let lines = talk["logs"].as_array().unwrap();
    assert_eq!(lines.len(), aerie_engine::StepLogs::MAX_LINES);
    assert_eq!(
        talk["logs_dropped"],
        600 - aerie_engine::StepLogs::MAX_LINES
    );
    assert_eq!(lines[0]["message"], "hello 0");
    assert_eq!(lines[0]["level"], "info");
    assert_eq!(lines[0]["context"], "plugin");
    assert!(lines[0]["at"].as_str().unwrap().ends_with('Z'));
    let leak = &shown["steps"][1];
    assert_eq!(leak["logs"][1]["message"], "the key is [REDACTED] 1");
    assert_eq!(leak["logs_dropped"], 0);

    let text = aerie(&["runs", "show", &id]);
    assert!(
        text.stdout.contains("  - log info plugin: hello 0\n"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("  - log: 100 more line(s) past the step's cap were dropped\n")
    );
    assert!(
        text.stdout
            .contains("  - log info plugin: the key is [REDACTED] 1\n")
    );

    let export = aerie(&["audit", "export", "--format", "json", "--run", &id]);
    let export: Value = serde_json::from_str(&export.stdout).unwrap();
    let logged: Vec<u64> = export["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "logs")
        .map(|e| {
            e["body"]["lines"].as_array().unwrap().len() as u64
                + e["body"]["dropped"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(logged, [600, 2]);
    // The input holds the value in plain (inputs are no secrets); what the
    // plugin logged holds it nowhere.
    let logged_text: Vec<String> = export["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "logs")
        .map(|e| e["body"].to_string())
        .chain(
            text.stdout
                .lines()
                .filter(|l| l.contains("- log"))
                .map(str::to_owned),
        )
        .collect();
    assert!(logged_text.iter().all(|l| !l.contains(SECRET)));
    assert_eq!(aerie(&["audit", "verify"]).code, 0);
}
