//! The `aerie` binary as a user runs it: output, exit codes and messages.

use crate::harness::{Site, run, run_with_stdin};

fn site() -> Site {
    let site = Site::new();
    site.shipped("ioc-extract");
    site
}

#[test]
fn plugin_call_prints_the_result() {
    let site = site();
    let ran = run(site.aerie().args([
        "plugin",
        "call",
        "ioc-extract",
        "extract",
        "--input",
        r#"{"text": "beacon to 203.0.113.9 and evil[.]example[.]com"}"#,
    ]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(out["ipv4"], serde_json::json!(["203.0.113.9"]));
    assert_eq!(out["domains"], serde_json::json!(["evil.example.com"]));
}

#[test]
fn input_from_a_file() {
    let site = site();
    site.file(
        "in.json",
        r#"{"text": "md5 D41D8CD98F00B204E9800998ECF8427E"}"#,
    );
    let ran = run(site.aerie().args([
        "plugin",
        "call",
        "ioc-extract",
        "extract",
        "--input",
        "@in.json",
    ]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("d41d8cd98f00b204e9800998ecf8427e"));
}

#[test]
fn bad_invocations_say_what_is_wrong() {
    let site = site();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &[
                "plugin",
                "call",
                "ioc-extract",
                "extract",
                "--input",
                "{text",
            ],
            2,
            "aerie: --input is not valid JSON: key must be a string at line 1 column 2",
        ),
        (
            &["plugin", "call", "ioc-extract", "extract", "--input", "{}"],
            1,
            "aerie: ioc-extract.extract: invalid-input: input: \"text\" is a required property",
        ),
        (
            &[
                "plugin",
                "call",
                "ioc-extract",
                "summarise",
                "--input",
                "{}",
            ],
            1,
            "aerie: ioc-extract.summarise: no action `summarise`; the plugin offers: extract",
        ),
        (
            &["plugin", "call", "jira", "create", "--input", "{}"],
            1,
            "aerie: no plugin `jira` in plugins (installed: ioc-extract)",
        ),
        (
            &[
                "plugin",
                "call",
                "ioc-extract",
                "extract",
                "--input",
                "@missing.json",
            ],
            2,
            "aerie: --input @missing.json: No such file or directory (os error 2)",
        ),
    ];
    for (args, code, message) in cases {
        let ran = run(site.aerie().args(*args));
        assert_eq!((ran.code, ran.stderr.trim()), (*code, *message), "{args:?}");
        assert!(ran.stdout.is_empty());
    }
    let ran = run(site.aerie().args(["plugin", "frobnicate"]));
    assert_eq!(ran.code, 2);
}

#[test]
fn jsonl_answers_each_line_in_order_and_fails_at_the_end() {
    let site = site();
    let input = "{\"text\": \"1.1.1.1\"}\nnot json\n{\"text\": \"2.2.2.2\"}\n{\"txt\": 3}\n";
    let ran = run_with_stdin(
        site.aerie()
            .args(["plugin", "call", "ioc-extract", "extract", "--jsonl"]),
        input,
    );
    assert_eq!(ran.code, 1);
    let lines: Vec<serde_json::Value> = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["ipv4"], serde_json::json!(["1.1.1.1"]));
    assert_eq!(lines[1]["error"]["code"], "invalid-input");
    assert!(
        lines[1]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2 is not JSON")
    );
    assert_eq!(lines[2]["ipv4"], serde_json::json!(["2.2.2.2"]));
    assert_eq!(lines[3]["error"]["code"], "invalid-input");
    assert_eq!(ran.stderr.trim(), "aerie: 2 of the inputs failed");
}

#[test]
fn jsonl_handles_a_large_batch_in_one_process() {
    let site = site();
    let input: String = (0..2000)
        .map(|i| format!("{{\"text\": \"10.0.{}.{}\"}}\n", i / 256, i % 256))
        .collect();
    let ran = run_with_stdin(
        site.aerie()
            .args(["plugin", "call", "ioc-extract", "extract", "--jsonl"]),
        &input,
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 2000);
    assert!(lines[1999].contains("10.0.7.207"), "{}", lines[1999]);
}

/// `aerie plugin call ... --jsonl | head -1`: a reader that stops early ends
/// the command quietly and successfully, as ripgrep does.
#[test]
fn jsonl_ends_quietly_when_its_reader_goes_away() {
    use std::io::{BufRead as _, Write as _};
    use std::process::Stdio;
    let site = site();
    let mut child = site
        .aerie()
        .args(["plugin", "call", "ioc-extract", "extract", "--jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for i in 0..20_000 {
            // The process may be gone before all is written.
            if writeln!(stdin, "{{\"text\": \"10.0.0.{}\"}}", i % 256).is_err() {
                break;
            }
        }
    });
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("10.0.0.0"), "{first}");
    // The reader (and its end of the pipe) goes away here.
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(0), "")
    );
}

/// Every command's output goes through writes that report a closed pipe:
/// `aerie plugin list --json | head` does not panic.
#[test]
fn list_ends_quietly_when_nobody_reads() {
    use std::process::Stdio;
    let site = site();
    let mut child = site
        .aerie()
        .args(["plugin", "list", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the command writes (it loads plugins first).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(0), "")
    );
}

#[test]
fn list_and_inspect() {
    let site = site();
    let ran = run(site.aerie().args(["plugin", "list", "--json"]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let list: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(list[0]["name"], "ioc-extract");
    assert_eq!(list[0]["world"], "step");
    assert_eq!(list[0]["actions"], serde_json::json!(["extract"]));

    let ran = run(site
        .aerie()
        .args(["plugin", "inspect", "plugins/ioc-extract", "--json"]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let view: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(view["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(view["allowed_origins"], serde_json::json!([]));
    assert_eq!(
        view["actions"][0]["input_schema"]["required"],
        serde_json::json!(["text"])
    );
}

#[test]
fn a_malformed_manifest_or_config_names_the_file_and_field() {
    let site = site();
    std::fs::write(
        site.path().join("plugins/ioc-extract/plugin.toml"),
        "name = \"ioc-extract\"\nversion = \"1\"\nworld = \"step\"\nactions = [\"extract\"]\nnetwork_access = true\n",
    )
    .unwrap();
    let ran = run(site.aerie().args(["plugin", "list"]));
    assert_eq!(ran.code, 0);
    insta::assert_snapshot!(ran.stdout.trim(), @"ioc-extract      NOT LOADED: plugins/ioc-extract/plugin.toml:5:1: unknown field `network_access`, expected one of `name`, `version`, `world`, `description`, `component`, `actions`, `settings`, `network`, `credentials`, `limits`, `instances`");

    site.config("[plugins.ioc-extract]\nlimit = { memory_mb = 1 }\n");
    let ran = run(site.aerie().args(["plugin", "list"]));
    assert_eq!(ran.code, 1);
    insta::assert_snapshot!(ran.stderr.trim(), @"aerie: aerie.toml:2:1: unknown field `limit`, expected one of `plugin`, `settings`, `allow`, `credentials`, `limits`, `data`, `ca_file`");
}

/// Commands that load no plugin do not start the wasm engine, whose pooling
/// allocator reserves hundreds of GiB of address space: under a 4 GiB limit
/// they work, while a command that loads plugins cannot start the engine.
#[test]
fn commands_without_plugins_do_not_reserve_the_instance_pool() {
    let site = site();
    let limited = |args: &str| {
        let script = format!("ulimit -v 4194304 && exec \"$0\" {args}");
        run(std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(crate::harness::aerie_bin())
            .current_dir(site.path()))
    };
    for args in ["runs list", "audit verify", "approvals list"] {
        let ran = limited(args);
        assert_eq!(ran.code, 0, "{args}: {}", ran.stderr);
    }
    let ran = limited("plugin list");
    assert_eq!(ran.code, 1, "{}", ran.stdout);
    assert!(ran.stderr.contains("memory pool"), "{}", ran.stderr);
}

#[test]
fn json_logs_carry_the_run_and_the_step() {
    let site = Site::new();
    let playbook = site.file(
        "note.yaml",
        "name: note\ninputs:\n  x: { type: string, required: true }\nsteps:\n  - id: say\n    log: \"hello {{ inputs.x }}\"\n",
    );
    let ran = run(site.aerie().args([
        "--log-format",
        "json",
        "-v",
        "run",
        playbook.to_str().unwrap(),
        "--input",
        r#"{"x": "world"}"#,
    ]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let lines: Vec<serde_json::Value> = ran
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let said = lines
        .iter()
        .find(|l| l["message"] == "hello world")
        .unwrap_or_else(|| panic!("{}", ran.stderr));
    assert_eq!(said["level"], "INFO");
    let spans = said["spans"].as_array().unwrap();
    let run_span = spans.iter().find(|s| s["name"] == "run").unwrap();
    assert_eq!(run_span["playbook"], "note");
    assert!(
        run_span["run"].as_str().is_some_and(|id| id.len() == 36),
        "{run_span}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "step" && s["step"] == "say"),
        "{said}"
    );
}
