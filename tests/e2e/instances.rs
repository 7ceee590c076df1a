//! Plugin instances: the same installed plugin under more names, each with
//! its own settings, credentials and warm instances — Jira Cloud for one
//! region and Data Center for another, two fastText models side by side.

use serde_json::{Value, json};

use crate::harness::{Site, repo, run};

// Multi-threaded: the stand-ins serve while this thread waits for `aerie run`.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_of_one_plugin_keep_their_own_settings_and_credentials() {
    let eu = aerie_tests::jira::StandIn::cloud("soc@eu.example", "eu-token-0123456789");
    let us = aerie_tests::jira::StandIn::data_center("us-pat-0123456789");
    let (eu_addr, _eu) = aerie_tests::serve(eu.router()).await.unwrap();
    let (us_addr, _us) = aerie_tests::serve(us.router()).await.unwrap();
    let site = Site::new();
    site.shipped("jira");
    let eu_secret = site.file("eu.secret", "soc@eu.example:eu-token-0123456789");
    let us_secret = site.file("us.secret", "us-pat-0123456789");
    site.config(&format!(
        r#"[plugins.jira-eu]
plugin = "jira"
settings = {{ base_url = "http://{eu_addr}", project = "SOC" }}
allow = ["http://{eu_addr}"]
credentials.api_token = {{ file = {eu:?} }}

[plugins.jira-us]
plugin = "jira"
settings = {{ base_url = "http://{us_addr}", deployment = "datacenter", project = "SOC" }}
allow = ["http://{us_addr}"]
credentials.pat = {{ file = {us:?} }}
"#,
        eu = eu_secret.display().to_string(),
        us = us_secret.display().to_string(),
    ));
    std::fs::write(
        site.path().join("escalate.yaml"),
        r#"name: escalate
steps:
  - id: eu
    uses: jira-eu.create_issue
    with: { summary: "EU incident", description: "in ADF on Cloud" }
  - id: us
    uses: jira-us.create_issue
    with: { summary: "US incident", description: "plain on Data Center" }
output: ["{{ steps.eu.output.key }}", "{{ steps.us.output.key }}"]
"#,
    )
    .unwrap();
    let ran = run(site.aerie().args(["run", "escalate.yaml", "--json"]));
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let record: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(record["output"], json!(["SOC-1", "SOC-1"]));
    // Each went to its own Jira, in its own deployment's form, with its own
    // credential (each stand-in accepts only its own).
    assert_eq!(eu.issues()[0].fields["description"]["type"], "doc");
    assert_eq!(us.issues()[0].fields["description"], "plain on Data Center");
    // The run's record names the instance that ran the step.
    let id = record["id"].as_str().unwrap();
    let shown = run(site.aerie().args(["runs", "show", id, "--json"]));
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["steps"][0]["plugin"]["name"], "jira-eu");
    assert_eq!(shown["steps"][1]["plugin"]["name"], "jira-us");
    assert_eq!(
        shown["steps"][0]["plugin"]["sha256"],
        shown["steps"][1]["plugin"]["sha256"]
    );

    let listed = run(site.aerie().args(["plugin", "list"]));
    assert!(
        listed.stdout.contains("jira-eu (jira)") && listed.stdout.contains("jira-us (jira)"),
        "{}",
        listed.stdout
    );
    let inspected = run(site
        .aerie()
        .args(["plugin", "inspect", "jira-us", "--json"]));
    let view: Value = serde_json::from_str(&inspected.stdout).unwrap();
    assert_eq!(view["instance_of"], "jira");
    assert_eq!(view["credentials"][1]["name"], "pat");
    assert_eq!(
        view["allowed_origins"],
        json!([format!("http://{us_addr}")])
    );
}

#[test]
fn two_fasttext_models_classify_side_by_side() {
    let site = Site::new();
    site.shipped("fasttext");
    let models = repo().join("host/fasttext/tests/reference/models");
    site.config(&format!(
        "[plugins.tickets]\nplugin = \"fasttext\"\ndata = {models:?}\nsettings = {{ model = \"softmax-char.bin\" }}\n\n\
         [plugins.tickets-small]\nplugin = \"fasttext\"\ndata = {models:?}\nsettings = {{ model = \"softmax-char-pruned.ftz\" }}\n",
        models = models.display().to_string(),
    ));
    let classify = |plugin: &str| {
        let ran = run(site.aerie().args([
            "plugin",
            "call",
            plugin,
            "classify",
            "--input",
            r#"{"text": "my laptop was stolen at the airport"}"#,
        ]));
        assert_eq!(ran.code, 0, "{plugin}: {}", ran.stderr);
        serde_json::from_str::<Value>(&ran.stdout).unwrap()
    };
    let (full, small) = (classify("tickets"), classify("tickets-small"));
    assert_eq!(full["labels"], json!(["DeviceLost"]));
    assert_eq!(small["labels"], json!(["DeviceLost"]));
    // Two models, two answers: the pruned, quantized one's probability differs.
    assert_ne!(full["probs"], small["probs"], "{full} {small}");
}

#[test]
fn an_instance_that_cannot_be_made_is_refused_by_name() {
    let site = Site::new();
    site.shipped("jira");
    let refused = |config: &str| {
        site.config(config);
        let ran = run(site.aerie().args(["plugin", "list"]));
        assert_ne!(ran.code, 0, "{config}: {}", ran.stdout);
        ran.stderr
    };
    let missing = refused("[plugins.rt]\nplugin = \"servicenow\"\n");
    assert!(
        missing.contains("[plugins.rt] is an instance of `servicenow`, which is not installed"),
        "{missing}"
    );
    let taken = refused("[plugins.jira]\nplugin = \"jira\"\n");
    assert!(
        taken.contains("a plugin is not an instance of itself"),
        "{taken}"
    );
    let built_in = refused("[plugins.case]\nplugin = \"jira\"\n");
    assert!(
        built_in.contains("`case` names the built-in actions"),
        "{built_in}"
    );
    let chained = refused("[plugins.a]\nplugin = \"jira\"\n[plugins.b]\nplugin = \"a\"\n");
    assert!(chained.contains("`a` is itself an instance"), "{chained}");
}
