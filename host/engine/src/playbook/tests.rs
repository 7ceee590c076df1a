use super::*;

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    c.plugins
        .insert("ioc-extract".into(), Ok(["extract".to_owned()].into()));
    c.plugins
        .insert("virustotal".into(), Ok(["lookup".to_owned()].into()));
    c.plugins
        .insert("broken".into(), Err("plugin.wasm: missing".into()));
    c.people.insert("alice".into());
    c
}

fn errors_with(source: &str, catalog: &Catalog) -> String {
    match Playbook::read(Path::new("pb.yaml"), source).validate(catalog) {
        Ok(_) => String::new(),
        Err(errors) => errors.to_string(),
    }
}

fn errors(source: &str) -> String {
    errors_with(source, &catalog())
}

#[test]
fn a_valid_playbook_has_no_errors() {
    let source = r#"
name: enrich
inputs:
  text: { type: string, required: true }
steps:
  - id: iocs
    uses: ioc-extract.extract
    with: { text: "{{ inputs.text }}" }
  - id: lookups
    for_each: "{{ steps.iocs.output.ipv4 }}"
    uses: virustotal.lookup
    with: { indicator: "{{ item }}" }
    on_error: continue
  - id: note
    if: "{{ steps.lookups.output | length > 0 }}"
    log: "looked up {{ steps.lookups.output | length }}"
output:
  verdicts: "{{ steps.lookups.output }}"
"#;
    assert_eq!(errors(source), "");
}

#[test]
fn every_error_is_reported_with_its_position() {
    let source = r#"name: bad
steps:
  - id: a
    uses: virustotal.scan
    with: { indicator: "{{ steps.b.output }}" }
  - id: b
    uses: nosuch.thing
  - id: b
    set: { x: "{{ inputs.nope }}" }
  - id: c
    uses: broken.run
  - id: d
    log: "{{ item }} {{ oops( }}"
output:
  x: "{{ steps.zzz.output }}"
"#;
    insta::assert_snapshot!(errors(source), @r"
    pb.yaml:4:5: step `a`: plugin `virustotal` has no action `scan` (it has: lookup)
    pb.yaml:5:24: step `a`: `steps.b` has not run yet at this point
    pb.yaml:7:5: step `b`: unknown plugin `nosuch`
    pb.yaml:8:5: duplicate step id `b`
    pb.yaml:9:15: step `b`: `inputs.nope` is not a declared input
    pb.yaml:11:5: step `c`: plugin `broken` cannot be loaded: plugin.wasm: missing
    pb.yaml:13:10: step `d`: template error: syntax error: unexpected `}` (in <string>:1)
    pb.yaml:15:6: output: `steps.zzz` does not exist
    ");
}

/// A typo in one step, an unknown action in another and a duplicate id in a
/// third: all three, at once.
#[test]
fn one_typo_does_not_hide_the_other_errors() {
    let source = r#"name: typos
steps:
  - id: iocs
    uses: ioc-extract.extract
    wiht: { text: hello }
  - id: vt
    uses: virustotal.scan
  - id: iocs
    log: again
  - id: note
    log: "{{ steps.vt.output }}"
"#;
    insta::assert_snapshot!(errors(source), @r"
    pb.yaml:5:5: step `iocs`: unknown field `wiht` (did you mean `with`?), expected one of `id`, `if`, `on_error`, `uses`, `with`, `for_each`, `concurrency`, `retry`, `timeout`, `set`, `log`, `approval`, `fail`, `switch`, `cases`, `default`, `parallel`, `playbook`
    pb.yaml:7:5: step `vt`: plugin `virustotal` has no action `scan` (it has: lookup)
    pb.yaml:8:5: duplicate step id `iocs`
    ");
}

/// Positions come from the parser, not from searching the text: `id: a` is
/// not found inside `id: ab`, two equal templates each get their own place,
/// and quoted or folded templates get one too.
#[test]
fn positions_are_the_parsers_own() {
    let source = r#"name: places
steps:
  - id: ab
    log: first
  - id: a
    log: "{{ steps.nope.output }}"
  - id: a
    log: "{{ steps.nope.output }}"
  - id: folded
    log: >-
      {{ steps.gone.output }}
  - id: quoted
    set: { v: '{{ steps.missing.output }}' }
"#;
    insta::assert_snapshot!(errors(source), @r"
    pb.yaml:6:10: step `a`: `steps.nope` does not exist
    pb.yaml:7:5: duplicate step id `a`
    pb.yaml:8:10: step `a`: `steps.nope` does not exist
    pb.yaml:11:7: step `folded`: `steps.gone` does not exist
    pb.yaml:13:15: step `quoted`: `steps.missing` does not exist
    ");
}

#[test]
fn yaml_and_shape_errors_have_positions() {
    insta::assert_snapshot!(errors("name: x\nsteps: [\n  - id: a\n"), @r#"pb.yaml:3:3: "-" is only valid inside a block"#);
    insta::assert_snapshot!(errors("name: x\nsteps:\n  - id: a\n    usess: p.a\n"), @r"
    pb.yaml:3:5: step `a`: give exactly one of `uses`, `set`, `log`, `approval`, `fail`, `switch`, `parallel` or `playbook`
    pb.yaml:4:5: step `a`: unknown field `usess` (did you mean `uses`?), expected one of `id`, `if`, `on_error`, `uses`, `with`, `for_each`, `concurrency`, `retry`, `timeout`, `set`, `log`, `approval`, `fail`, `switch`, `cases`, `default`, `parallel`, `playbook`
    ");
    insta::assert_snapshot!(errors("name: x\nsteps:\n  - id: a\n    uses: p\n"), @"pb.yaml:4:5: step `a`: `uses: p` must be plugin.action");
    insta::assert_snapshot!(errors("name: x\nname: y\nsteps: []\n"), @"pb.yaml:2:1: duplicate key `name` (first at line 1)");
    insta::assert_snapshot!(errors("steps:\n  - log: x\n  - id: b\n    log: [x]\n    timeout: 1s\n    retry: { attempts: 0 }\n"), @r"
    pb.yaml:1:1: missing field `name`
    pb.yaml:2:5: a step needs an `id`
    pb.yaml:4:10: step `b`: log: expected a string
    pb.yaml:5:5: step `b`: `timeout` belongs to a `uses` step
    pb.yaml:6:5: step `b`: `retry` belongs to a `uses` step
    ");
}

#[test]
fn anchors_and_deep_nesting_are_refused_before_they_cost_anything() {
    let aliases = "name: x\nbase: &b [1, 2]\nsteps: [*b, *b]\n";
    insta::assert_snapshot!(errors(aliases), @"pb.yaml:2:10: anchors and aliases are not allowed in a playbook (call a playbook to reuse steps)");
    let deep = format!(
        "name: x\nsteps: []\noutput: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    insta::assert_snapshot!(errors(&deep), @"pb.yaml:3:264: values nest more than 64 deep");
    let deep_blocks: String = (0..200)
        .map(|n| format!("{}- \n", "  ".repeat(n)))
        .collect();
    let deep_blocks = format!("name: x\nsteps: []\noutput:\n{deep_blocks}");
    assert!(errors(&deep_blocks).contains("values nest more than 64 deep"));
}

#[test]
fn literal_inputs_are_checked_against_the_schema() {
    let mut catalog = catalog();
    catalog.schemas.insert(
        ("virustotal".into(), "lookup".into()),
        serde_json::json!({
            "type": "object",
            "properties": {"indicator": {"type": "string"}, "type": {"enum": ["file", "ip"]}},
            "required": ["indicator"],
            "additionalProperties": false
        }),
    );
    let check = |with: &str| -> String {
        let source =
            format!("name: x\nsteps:\n  - id: vt\n    uses: virustotal.lookup\n    with: {with}\n");
        errors_with(&source, &catalog)
    };
    assert_eq!(check("{ indicator: 8.8.8.8, type: ip }"), "");
    assert_eq!(check("{ indicator: \"{{ 1 + 1 }}\" }"), "");
    insta::assert_snapshot!(check("{ type: domain, extra: 1 }"), @r#"
    pb.yaml:3:5: step `vt`: input "indicator" is a required property
    pb.yaml:3:5: step `vt`: input /type: "domain" is not one of "file" or "ip"
    pb.yaml:3:5: step `vt`: input Additional properties are not allowed ('extra' was unexpected)
    "#);
}

#[test]
fn triggers_are_checked() {
    for (trigger, expected) in [
        ("{ manual: {} }", ""),
        ("{ webhook: { name: phish } }", ""),
        ("{ webhook: { name: gh, headers: [X-GitHub-Event] } }", ""),
        (
            "{ webhook: { path: /hooks/phish } }",
            "pb.yaml:2:23: trigger: webhook: unknown field `path`, expected one of `name`, `headers`, `dedupe`\npb.yaml:2:23: trigger: webhook: missing field `name`",
        ),
        ("{ mail: { mailbox: soc } }", ""),
        ("{ cron: \"*/5 9-17 * * 1-5\" }", ""),
        (
            "{ cron: \"0 0 * *\" }",
            "pb.yaml:2:1: trigger: cron `0 0 * *` needs 5 fields (minute hour day month weekday), or 6 with seconds first",
        ),
        (
            "{ cron: \"61 * * * *\" }",
            "pb.yaml:2:1: trigger: cron `61 * * * *`: the minute field `61`: Component error: Number out of bounds.",
        ),
        (
            "{ cron: \"* * * * */0\" }",
            "pb.yaml:2:1: trigger: cron `* * * * */0`: the day of week field `*/0`: Component error: Step cannot be zero.",
        ),
        (
            "{ cron: { schedule: \"0 8 * * 1-5\", tz: Europe/London, missed: skip, overlap: allow } }",
            "",
        ),
        (
            "{ cron: { schedule: \"* * * * *\", missed: sometimes } }",
            "pb.yaml:2:51: trigger: cron: missed: `sometimes` is not `run_once` or `skip`",
        ),
        (
            "{ cron: { tz: UTC } }",
            "pb.yaml:2:20: trigger: cron: missing field `schedule`",
        ),
        (
            "{ cron: { schedule: \"0 8 * * *\", tz: London } }",
            "pb.yaml:2:1: trigger: cron tz `London` is not a time zone (an IANA name such as Europe/London)",
        ),
        (
            "{ webhook: { name: /hooks/x } }",
            "pb.yaml:2:1: trigger: webhook name `/hooks/x` may use only a-z, 0-9, `-` and `_` (it is a URL path segment)",
        ),
        (
            "{ pager: {} }",
            "pb.yaml:2:12: trigger: unknown field `pager`, expected one of `manual`, `webhook`, `mail`, `cron`",
        ),
        (
            "{ manual: {}, cron: \"* * * * *\" }",
            "pb.yaml:2:1: trigger: give exactly one of `manual`, `webhook`, `mail` or `cron`",
        ),
    ] {
        let source = format!("name: t\ntrigger: {trigger}\nsteps: []\n");
        assert_eq!(errors(&source), expected, "{trigger}");
    }
}

#[test]
fn inputs_are_bound_with_defaults_and_checked() {
    let p = Playbook::parse(
        Path::new("pb.yaml"),
        "name: x\ninputs:\n  text: { required: true }\n  severity: { default: low }\n  n: { type: integer }\nsteps: []\n",
    )
    .unwrap();
    assert_eq!(
        p.bind_inputs(&serde_json::json!({"text": "t"})).unwrap(),
        serde_json::json!({"n": null, "severity": "low", "text": "t"})
    );
    assert_eq!(
        p.bind_inputs(&serde_json::json!({})).unwrap_err(),
        "input `text` is required"
    );
    assert_eq!(
        p.bind_inputs(&serde_json::json!({"text": "t", "x": 1}))
            .unwrap_err(),
        "unknown input `x` (declared: n, severity, text)"
    );
    assert_eq!(
        p.bind_inputs(&serde_json::json!({"text": "t", "n": "two"}))
            .unwrap_err(),
        "input `n` must be an integer, got \"two\""
    );
    insta::assert_snapshot!(errors("name: x\ninputs:\n  n: { type: int, required: maybe }\nsteps: []\n"), @r"
    pb.yaml:3:14: input `n`: type: `int` is not `string` or `number` or `integer` or `boolean` or `object` or `array`
    pb.yaml:3:29: input `n`: required: expected true or false
    ");
}

#[test]
fn nested_steps_are_validated_too() {
    let source = r#"name: t
steps:
  - id: route
    switch: "{{ 'x' }}"
    cases:
      x:
        - { id: inner, set: { v: "{{ steps.later.output }}" } }
        - { id: route, log: dup }
  - id: par
    parallel:
      - { id: p1, set: { a: 1 } }
      - { id: p2, set: { b: "{{ steps.p1.output }}" } }
      - id: p3
        switch: "{{ 1 }}"
  - id: later
    set: { ok: "{{ steps.inner.output }}" }
  - id: orphan
    cases: { a: [] }
    log: x
"#;
    insta::assert_snapshot!(errors_with(source, &Catalog::default()), @r"
    pb.yaml:7:34: step `inner`: `steps.later` has not run yet at this point
    pb.yaml:8:13: duplicate step id `route`
    pb.yaml:12:29: step `p2`: `steps.p1` has not run yet at this point
    pb.yaml:13:9: step `p3`: a step inside `parallel` is a `uses`, `set`, `log`, `fail` or `playbook` step
    pb.yaml:18:5: step `orphan`: `cases` belongs to a `switch` step
    ");
}

#[test]
fn a_classification_names_its_label_and_its_label_sources() {
    let source = r#"name: c
steps:
  - id: m
    uses: ioc-extract.extract
classification:
  label: "{{ steps.m.output.label }}"
  probability: "{{ steps.nope.output }}"
  labels: [Unclassified]
  labels_from: [ioc-extract.labels, nosuch.labels, broken]
  colour: red
"#;
    insta::assert_snapshot!(errors(source), @r"
    pb.yaml:7:16: output: `steps.nope` does not exist
    pb.yaml:9:17: classification: labels_from: plugin `ioc-extract` has no action `labels` (it has: extract)
    pb.yaml:9:37: classification: labels_from: unknown plugin `nosuch`
    pb.yaml:9:52: classification: labels_from: `broken` must be plugin.action
    pb.yaml:10:3: classification: unknown field `colour`, expected one of `label`, `probability`, `decided_by`, `text`, `labels`, `labels_from`
    ");
    let parsed = Playbook::read(Path::new("pb.yaml"), source).playbook;
    assert_eq!(
        parsed.plugins().into_iter().collect::<Vec<_>>(),
        ["ioc-extract", "nosuch"]
    );
}

#[test]
fn a_file_too_big_to_be_a_playbook_is_refused_unread() {
    let padding = format!("# {}\n", "x".repeat(1 << 20));
    let source = format!("name: big\nsteps: []\n{padding}");
    insta::assert_snapshot!(errors(&source), @"pb.yaml: the file is 1048599 bytes; a playbook may be at most 1024 KiB");
    let dir = std::env::temp_dir().join(format!("aerie-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.yaml");
    std::fs::write(&path, &source).unwrap();
    let parsed = Playbook::read_file(&path);
    assert!(
        parsed.errors[0]
            .message
            .starts_with("the file is 1048599 bytes")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `for_each` on a `set` step gives it `item` and `index`; on a `log` step
/// it belongs to no kind, and without it `item` is unknown.
#[test]
fn a_set_step_may_run_per_item() {
    let source = r#"name: rows
steps:
  - id: rows
    for_each: "{{ [1, 2] }}"
    set: { n: "{{ item }}", at: "{{ index }}" }
  - id: note
    for_each: "{{ [1] }}"
    log: once
  - id: single
    set: "{{ item }}"
"#;
    insta::assert_snapshot!(errors(source), @r"
    pb.yaml:7:5: step `note`: `for_each` belongs to a `uses` or `set` step
    pb.yaml:10:10: step `single`: unknown variable `item` (use inputs.*, steps.*, or item/index in a for_each step)
    ");
}

/// A webhook trigger's dedupe block: read with its defaults; its key may
/// read only the inputs, since no step has run when it is rendered.
#[test]
fn a_webhook_trigger_folds_repeats_by_a_key_of_its_inputs() {
    let good = r#"name: fold
inputs:
  body: { type: object, required: true }
trigger:
  webhook:
    name: alerts
    dedupe: { key: "{{ inputs.body.src_ip }}|{{ inputs.body.cve }}", window: 5m, window_from: last }
steps:
  - { id: a, log: hi }
"#;
    let playbook = Playbook::parse(Path::new("pb.yaml"), good).unwrap();
    let Some(crate::Trigger::Webhook {
        dedupe: Some(dedupe),
        ..
    }) = &playbook.trigger
    else {
        panic!("no dedupe read: {:?}", playbook.trigger);
    };
    assert_eq!(dedupe.window, std::time::Duration::from_secs(300));
    assert_eq!(dedupe.from, crate::WindowFrom::Last);
    let bad = r#"name: fold
inputs:
  body: { type: object, required: true }
trigger:
  webhook:
    name: alerts
    dedupe: { key: "{{ inputs.body.ip }}", window: soon, window_from: middle }
steps:
  - { id: a, log: hi }
"#;
    insta::assert_snapshot!(errors(bad), @r"
    pb.yaml:7:52: trigger: webhook: dedupe: window: `soon` is not a duration like 500ms, 20s or 4h: expected number at 0
    pb.yaml:7:71: trigger: webhook: dedupe: window_from: `middle` is not `first` or `last`
    ");
    let too_late = good.replace(
        "{{ inputs.body.src_ip }}|{{ inputs.body.cve }}",
        "{{ steps.a.output }}{{ inputs.nope }}",
    );
    insta::assert_snapshot!(errors(&too_late), @r"
    pb.yaml:7:20: trigger: webhook: dedupe: key: `inputs.nope` is not there before a run starts: use the declared inputs (inputs.body, inputs.headers)
    pb.yaml:7:20: trigger: webhook: dedupe: key: `steps.a.output` is not there before a run starts: use the declared inputs (inputs.body, inputs.headers)
    ");
}
