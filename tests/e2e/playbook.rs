//! `aerie run` and `aerie playbook validate` with the shipped playbook, the
//! shipped plugins and the VirusTotal stand-in; the run is stored in SQLite.

use aerie_tests::virustotal::StandIn;
use serde_json::{Value, json};

use crate::harness::{Site, grant, repo, run};

const KEY: &str = "vt-run-secret-8d1e55aa";

async fn site(vt: &StandIn, addr: std::net::SocketAddr) -> Site {
    let _ = vt;
    let origin = format!("http://{addr}");
    let site = Site::new();
    site.shipped("ioc-extract")
        .shipped("virustotal")
        .config(&grant(
            "virustotal",
            &origin,
            "credentials.api_key = { env = \"VT_API_KEY\" }\n",
        ));
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    std::fs::copy(
        repo().join("playbooks/enrich-ioc.yaml"),
        site.path().join("playbooks/enrich-ioc.yaml"),
    )
    .unwrap();
    site
}

#[tokio::test]
async fn enrich_ioc_runs_end_to_end_and_keeps_no_secret() {
    let vt = StandIn::new(KEY);
    let (addr, _server) = aerie_tests::serve(vt.router()).await.unwrap();
    let site = site(&vt, addr).await;
    let text = "Mail from bob[at]login-paypal-secure[.]com: hxxp://login-paypal-secure[.]com/verify, \
                attachment 44d88612fea8a8f36de82e1278abb02f calls 185.220.101.1 and never-seen.org";
    let ran = tokio::task::spawn_blocking({
        let mut command = site.aerie();
        command
            .args(["run", "enrich-ioc", "--json", "--input"])
            .arg(json!({ "text": text }).to_string())
            .env("VT_API_KEY", KEY)
            .env("AERIE_LOG", "debug");
        move || run(&mut command)
    })
    .await
    .unwrap();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(out["status"], "succeeded");
    assert_eq!(out["steps"][0]["id"], "iocs");
    assert_eq!(out["steps"][1]["attempts"], 5);

    let verdicts: Vec<(String, String)> = out["output"]["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["indicator"].as_str().unwrap().to_owned(),
                i["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("44d88612fea8a8f36de82e1278abb02f", "malicious"),
        ("185.220.101.1", "malicious"),
        ("login-paypal-secure.com", "malicious"),
        ("never-seen.org", "unknown"),
        ("http://login-paypal-secure.com/verify", "malicious"),
    ];
    assert_eq!(
        verdicts,
        expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(out["output"]["malicious"].as_array().unwrap().len(), 4);
    assert!(
        vt.received()
            .iter()
            .all(|r| r.api_key.as_deref() == Some(KEY))
    );

    // The secret is in neither the output, the logs, nor the database.
    assert!(!ran.stdout.contains(KEY) && !ran.stderr.contains(KEY));
    let store = aerie_store::Store::open(&format!(
        "sqlite://{}",
        site.path().join(".aerie/aerie.db").display()
    ))
    .await
    .unwrap();
    let dump = store.dump().await.unwrap();
    assert!(
        dump.contains("login-paypal-secure.com"),
        "the run is stored"
    );
    assert!(!dump.contains(KEY));
    let db = std::fs::read(site.path().join(".aerie/aerie.db")).unwrap();
    let wal = std::fs::read(site.path().join(".aerie/aerie.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()));
    }
    // Every brokered request is recorded against its step and item.
    let id = out["id"].as_str().unwrap();
    let requests = store.requests(id).await.unwrap();
    assert_eq!(requests.len(), 5);
    assert_eq!(requests[4]["step"], "lookups");
    assert_eq!(requests[4]["item"], 4);
    assert_eq!(requests[3]["status"], 404);
}

#[tokio::test]
async fn a_failed_lookup_does_not_hide_the_others() {
    let vt = StandIn::new(KEY);
    vt.set_quota(Some(1));
    let (addr, _server) = aerie_tests::serve(vt.router()).await.unwrap();
    let site = site(&vt, addr).await;
    let ran = tokio::task::spawn_blocking({
        let mut command = site.aerie();
        command
            .args([
                "run",
                "enrich-ioc",
                "--json",
                "--input",
                r#"{"text": "8.8.8.8 and 185.220.101.1"}"#,
            ])
            .env("VT_API_KEY", KEY);
        move || run(&mut command)
    })
    .await
    .unwrap();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(out["output"]["indicators"][0]["verdict"], "clean");
    assert_eq!(
        out["output"]["indicators"][1]["error"]["code"],
        "rate-limited"
    );
    assert_eq!(out["steps"][1]["error"]["code"], "rate-limited");
}

#[test]
fn bad_inputs_and_invalid_playbooks_are_refused_clearly() {
    let site = Site::new();
    site.shipped("ioc-extract");
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    std::fs::copy(
        repo().join("playbooks/enrich-ioc.yaml"),
        site.path().join("playbooks/enrich-ioc.yaml"),
    )
    .unwrap();

    // virustotal is not installed here.
    let ran = run(site
        .aerie()
        .args(["playbook", "validate", "playbooks/enrich-ioc.yaml"]));
    assert_eq!(ran.code, 1);
    insta::assert_snapshot!(ran.stderr.trim(), @"playbooks/enrich-ioc.yaml:23:5: step `lookups`: unknown plugin `virustotal`");

    site.file(
        "bad.yaml",
        "name: bad\nsteps:\n  - id: a\n    uses: ioc-extract.extract\n    with: { text: \"{{ steps.a.output }}\" }\n  - id: a\n    log: hi\n",
    );
    let ran = run(site.aerie().args(["playbook", "validate", "bad.yaml"]));
    assert_eq!(ran.code, 1);
    insta::assert_snapshot!(ran.stderr.trim(), @r"
    bad.yaml:5:19: step `a`: `steps.a` has not run yet at this point
    bad.yaml:6:5: duplicate step id `a`
    ");

    site.file("ok.yaml", "name: ok\ninputs:\n  n: { type: integer, required: true }\nsteps:\n  - id: double\n    set: { value: \"{{ inputs.n|int * 2 }}\" }\noutput: \"{{ steps.double.output.value }}\"\n");
    let ran = run(site
        .aerie()
        .args(["run", "ok.yaml", "--json", "--input", r#"{"n": 21}"#]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(out["output"], json!(42));

    let ran = run(site
        .aerie()
        .args(["run", "ok.yaml", "--input", r#"{"n": "many"}"#]));
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (1, r#"aerie: ok: input `n` must be an integer, got "many""#)
    );
    let ran = run(site.aerie().args(["run", "ok.yaml", "--input", "[1"]));
    assert_eq!(ran.code, 2);
    let ran = run(site.aerie().args(["run", "nosuch.yaml"]));
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (
            1,
            "nosuch.yaml: No such file or directory (os error 2)\naerie: nosuch.yaml is not a valid playbook"
        )
    );
}

#[tokio::test]
async fn a_rate_limited_lookup_is_retried_with_backoff() {
    let vt = StandIn::new(KEY);
    vt.throttle(2);
    let (addr, _server) = aerie_tests::serve(vt.router()).await.unwrap();
    let site = site(&vt, addr).await;
    site.file(
        "retry.yaml",
        "name: retry\nsteps:\n  - id: vt\n    uses: virustotal.lookup\n    with: { indicator: 8.8.8.8 }\n    retry: { attempts: 3, backoff: 50ms }\noutput: \"{{ steps.vt.output.verdict }}\"\n",
    );
    let ran = tokio::task::spawn_blocking({
        let mut command = site.aerie();
        command
            .args(["run", "retry.yaml", "--json"])
            .env("VT_API_KEY", KEY);
        move || run(&mut command)
    })
    .await
    .unwrap();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(
        (out["output"].clone(), out["steps"][0]["attempts"].clone()),
        (json!("clean"), json!(3))
    );
    assert_eq!(vt.received().len(), 3);
}

#[test]
fn a_playbook_step_runs_another_playbook() {
    let site = Site::new();
    site.shipped("ioc-extract");
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    site.file(
        "playbooks/count-ips.yaml",
        "name: count-ips\ninputs:\n  text: { required: true }\nsteps:\n  - id: iocs\n    uses: ioc-extract.extract\n    with: { text: \"{{ inputs.text }}\" }\noutput: { ips: \"{{ steps.iocs.output.ipv4 | length }}\" }\n",
    );
    site.file(
        "playbooks/parent.yaml",
        "name: parent\nsteps:\n  - id: child\n    playbook: count-ips\n    with: { text: \"1.1.1.1 2.2.2.2\" }\noutput: \"{{ steps.child.output.ips }}\"\n",
    );
    site.file(
        "playbooks/loop.yaml",
        "name: loop\nsteps:\n  - id: again\n    playbook: loop\n",
    );
    let ran = run(site.aerie().args(["run", "parent", "--json"]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(out["output"], json!(2));
    let runs: Value =
        serde_json::from_str(&run(site.aerie().args(["runs", "list", "--json"])).stdout).unwrap();
    let names: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["playbook"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["count-ips", "parent"],
        "the called playbook is a run of its own"
    );

    let ran = run(site.aerie().args(["run", "loop", "--json"]));
    assert_eq!(ran.code, 1);
    let out: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert!(
        out["error"]
            .as_str()
            .unwrap()
            .contains("playbooks call each other more than 8 deep"),
        "{}",
        out["error"]
    );

    site.file(
        "playbooks/broken.yaml",
        "name: broken\nsteps:\n  - id: x\n    playbook: nowhere\n",
    );
    let ran = run(site
        .aerie()
        .args(["playbook", "validate", "playbooks/broken.yaml"]));
    assert_eq!(
        (ran.code, ran.stderr.trim()),
        (
            1,
            "playbooks/broken.yaml:4:15: step `x`: no playbook `nowhere` in the playbooks folder"
        )
    );
}

#[test]
fn literal_inputs_are_checked_against_the_plugins_schema() {
    let site = Site::new();
    site.shipped("ioc-extract");
    site.file(
        "literal.yaml",
        "name: literal\nsteps:\n  - id: iocs\n    uses: ioc-extract.extract\n    with: { txt: hello }\n",
    );
    let ran = run(site.aerie().args(["playbook", "validate", "literal.yaml"]));
    assert_eq!(ran.code, 1);
    insta::assert_snapshot!(ran.stderr.trim(), @r#"
    literal.yaml:3:5: step `iocs`: input Additional properties are not allowed ('txt' was unexpected)
    literal.yaml:3:5: step `iocs`: input "text" is a required property
    "#);
}
