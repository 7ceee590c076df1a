//! The ReCategorise flow: `playbooks/recategorise-email.yaml` classifies an
//! e-mail with the fastText plugin, falls back to keyword rules and then to a
//! default, routes it to its category's playbook, and records the decision;
//! analysts correct runs and `aerie classify report` measures the month.

use serde_json::Value;

use crate::harness::{Ran, Site, repo, run};

fn site() -> Site {
    let site = Site::new();
    site.shipped_all();
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    for entry in std::fs::read_dir(repo().join("playbooks")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(
                &path,
                site.path()
                    .join("playbooks")
                    .join(path.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    let models = repo().join("host/fasttext/tests/reference/models");
    site.config(&format!(
        r#"playbooks_dir = "playbooks"

[plugins.fasttext]
data = {:?}
settings = {{ model = "softmax-char.bin" }}

[plugins.keyword-match]
settings = {{ rules = [
  {{ label = "Enrichment", keywords = ["hello there team"] }},
  {{ label = "Phishing", patterns = ['verify (your )?account'] }},
] }}

# The enrichment service's Jira, CAPE and SIEM (never called here).
[plugins.jira]
settings = {{ base_url = "https://jira.example", project = "SOC" }}
[plugins.cape]
settings = {{ base_url = "https://cape.example" }}
[plugins.elastic]
settings = {{ base_url = "https://siem.example:9200" }}

[users.alice]
[users.bob]
"#,
        models.display().to_string()
    ));
    site
}

fn aerie(site: &Site, args: &[&str]) -> Ran {
    run(site.aerie().args(args))
}

fn json(ran: &Ran) -> Value {
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout))
}

/// `aerie classify correct RUN --label LABEL --as USER`.
fn correct(site: &Site, run: &str, label: &str, user: &str) -> Ran {
    aerie(
        site,
        &["classify", "correct", run, "--label", label, "--as", user],
    )
}

fn classify(site: &Site, subject: &str, body: &str) -> Value {
    let input = serde_json::json!({ "subject": subject, "body": body, "from": "bob@example.com" });
    json(&aerie(
        site,
        &[
            "run",
            "recategorise-email",
            "--json",
            "--input",
            &input.to_string(),
        ],
    ))
}

#[test]
fn every_shipped_playbook_validates() {
    let site = site();
    let mut args = vec!["playbook".to_owned(), "validate".to_owned()];
    for entry in std::fs::read_dir(site.path().join("playbooks")).unwrap() {
        args.push(entry.unwrap().path().display().to_string());
    }
    let ran = run(site.aerie().args(&args));
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert_eq!(
        ran.stdout.lines().filter(|l| l.ends_with(": ok")).count(),
        7,
        "{}",
        ran.stdout
    );
}

#[test]
fn each_path_decides_routes_and_is_recorded_then_reviewed() {
    let site = site();

    // Sure enough: the model decides.
    let stolen = classify(
        &site,
        "laptop stolen",
        "my macbook was stolen at the airport taxi",
    );
    assert_eq!(stolen["status"], "succeeded");
    let out = &stolen["output"];
    assert_eq!(
        (out["label"].as_str(), out["decided_by"].as_str()),
        (Some("DeviceLost"), Some("fasttext"))
    );
    assert!(out["probability"].as_f64().unwrap() >= 0.8, "{out}");
    assert_eq!(out["routed_to"], "DeviceLost");
    let steps: Vec<(&str, &str)> = stolen["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert!(steps.contains(&("keywords", "skipped")), "{steps:?}");
    assert!(steps.contains(&("device-lost", "succeeded")), "{steps:?}");
    assert!(steps.contains(&("phishing", "skipped")), "{steps:?}");

    // Unsure, but a keyword rule matches.
    let keyword = classify(&site, "", "hello there team");
    let out = &keyword["output"];
    assert!(out["probability"].as_f64().unwrap() < 0.8, "{out}");
    assert_eq!(
        (out["label"].as_str(), out["decided_by"].as_str()),
        (Some("Enrichment"), Some("keyword-match"))
    );
    assert_eq!(out["keywords"], serde_json::json!(["hello there team"]));
    assert_eq!(out["routed_to"], "Enrichment");

    // Neither: Unclassified, to the default playbook.
    let neither = classify(&site, "", "hello");
    let out = &neither["output"];
    assert_eq!(
        (out["label"].as_str(), out["decided_by"].as_str()),
        (Some("Unclassified"), Some("default"))
    );
    assert_eq!(out["routed_to"], "Unclassified");

    // The analysts review: one correction, one confirmation.
    let id = |run: &Value| run["id"].as_str().unwrap().to_owned();
    let ran = correct(&site, &id(&stolen), "Phishing", "alice");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.stdout.trim(),
        format!(
            "alice corrected run {}: DeviceLost -> Phishing",
            id(&stolen)
        )
    );
    let ran = correct(&site, &id(&keyword), "Enrichment", "bob");
    assert_eq!(
        ran.stdout.trim(),
        format!("bob confirmed run {}: Enrichment", id(&keyword))
    );

    let ran = correct(&site, &id(&neither), "Spam", "mallory");
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (1, "aerie: `mallory` is not a user in [users] of the config")
    );
    let ran = correct(&site, "no-such-run", "Spam", "alice");
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (1, "aerie: no run `no-such-run`")
    );

    // A label no classifier knows is refused, unless it starts a new category.
    let ran = correct(&site, &id(&neither), "Phising", "alice");
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (
            1,
            "aerie: `Phising` is not a label of `recategorise-email` (AccountLockout, DeviceLost, \
             Enrichment, Malware, Phishing, Spam, Unclassified); add --new to start a new category"
        )
    );

    let shown = json(&aerie(&site, &["runs", "show", &id(&stolen), "--json"]));
    let month = &shown["started_at"].as_str().unwrap()[..7];
    let report = json(&aerie(
        &site,
        &["classify", "report", "--month", month, "--json"],
    ));
    assert_eq!(report["predictions"], 3);
    assert_eq!(
        report["decided_by"],
        serde_json::json!({ "default": 1, "fasttext": 1, "keyword-match": 1 })
    );
    assert_eq!(
        (report["reviewed"].as_u64(), report["corrected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(report["accuracy"], 0.5);
    assert_eq!(report["confusion"]["Phishing"]["DeviceLost"], 1);

    let table = aerie(&site, &["classify", "report", "--month", month]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("accuracy     50.0%"),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains("confusion (rows: actual, columns: predicted)"),
        "{}",
        table.stdout
    );

    let ran = aerie(&site, &["classify", "report", "--month", "2026-13"]);
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (
            2,
            "aerie: --month `2026-13` is not YYYY-MM, such as 2026-11"
        )
    );

    // The correction is in the audit trail, with who made it.
    let export = json(&aerie(
        &site,
        &["audit", "export", "--run", &id(&stolen), "--format", "json"],
    ));
    let corrected = export["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "classification.corrected")
        .expect("the correction is audited");
    assert_eq!(corrected["body"]["by"], "alice");
    assert_eq!(corrected["body"]["predicted"], "DeviceLost");

    // The reviewed runs become training data, beside the original set.
    let model = site.path().join("retrained.bin");
    let train = repo().join("host/fasttext/tests/reference/train.txt");
    let ran = run(site
        .aerie()
        .args([
            "model",
            "train",
            "--from-corrections",
            "--dim",
            "10",
            "--lr",
            "0.5",
            // One thread trains deterministically; hogwild threads need not.
            "--thread",
            "1",
        ])
        .arg("--input")
        .arg(&train)
        .arg("--output")
        .arg(&model));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(
            "2 corrected or confirmed classifications of `recategorise-email` from the store"
        ),
        "{}",
        ran.stderr
    );
    let retrained = aerie_fasttext::Model::load(&model).unwrap();
    assert_eq!(retrained.labels().count(), 6);
    // A text no analyst touched is classified as before.
    assert_eq!(
        retrained.predict("my iphone was lost in the train, please wipe it", 1, 0.0)[0].label,
        "DeviceLost"
    );
}

/// Any playbook with a `classification:` block is reviewed the same way: a
/// second classifier (keyword rules only, other labels) needs no code.
#[test]
fn a_second_classifier_is_reviewed_without_code_changes() {
    let site = site();
    site.file(
        "playbooks/spam-filter.yaml",
        r#"name: spam-filter
inputs:
  text: { required: true }
steps:
  - id: rules
    uses: keyword-match.match
    with: { text: "{{ inputs.text }}" }
classification:
  label: "{{ steps.rules.output.label or 'Ham' }}"
  decided_by: keyword-match
  text: "{{ inputs.text }}"
  labels: [Ham]
  labels_from: [keyword-match.labels]
"#,
    );
    let ran = json(&aerie(
        &site,
        &[
            "run",
            "spam-filter",
            "--json",
            "--input",
            r#"{"text": "hello there team"}"#,
        ],
    ));
    let id = ran["id"].as_str().unwrap().to_owned();
    let shown = json(&aerie(&site, &["runs", "show", &id, "--json"]));
    assert_eq!(shown["classification"]["label"], "Enrichment");
    assert_eq!(shown["classification"]["text"], "hello there team");

    // Its labels are its own: the rules' and `Ham`, not the fastText model's.
    let ran = correct(&site, &id, "Malware", "alice");
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (
            1,
            "aerie: `Malware` is not a label of `spam-filter` (Enrichment, Ham, Phishing); add --new to start a new category"
        )
    );
    let ran = correct(&site, &id, "Ham", "alice");
    assert_eq!(ran.code, 0, "{}", ran.stderr);

    let month = &shown["started_at"].as_str().unwrap()[..7];
    let report = json(&aerie(
        &site,
        &[
            "classify",
            "report",
            "--month",
            month,
            "--playbook",
            "spam-filter",
            "--json",
        ],
    ));
    assert_eq!(report["predictions"], 1);
    assert_eq!(
        report["decided_by"],
        serde_json::json!({ "keyword-match": 1 })
    );
    assert_eq!(
        (report["reviewed"].as_u64(), report["corrected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(report["confusion"]["Ham"]["Enrichment"], 1);

    // A run of a playbook that does not classify cannot be corrected.
    site.file(
        "playbooks/plain.yaml",
        "name: plain\nsteps:\n  - { id: a, set: 1 }\n",
    );
    let plain = json(&aerie(&site, &["run", "plain", "--json"]));
    let ran = correct(&site, plain["id"].as_str().unwrap(), "Ham", "alice");
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("is not a classification"),
        "{}",
        ran.stderr
    );
}
