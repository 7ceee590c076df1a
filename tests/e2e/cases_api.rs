//! Cases through `/api/v1/cases`, as the web page and scripts work them: a
//! repeat folded by its dedupe key, the "might be related" note's one-call
//! close, comments, tasks, links, similar cases and ignored observables —
//! each change as the token's user, bad input refused by name.

use serde_json::{Value, json};

use crate::harness::Site;
use crate::served::{Answer, Served, get, request, token};

fn site() -> Site {
    let site = Site::new();
    std::fs::create_dir_all(site.path().join("playbooks")).unwrap();
    site.config("[server]\nlisten = \"127.0.0.1:0\"\n\n[users.alice]\n[users.bob]\n");
    site
}

/// `METHOD path` with a JSON body, as the token's user.
async fn call(served: &Served, method: &str, path: &str, token: &str, body: Value) -> Answer {
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    request(served.addr, method, path, &headers, body.to_string()).await
}

fn message(answer: &Answer) -> &str {
    answer.body["error"]["message"].as_str().unwrap_or_default()
}

fn alert(src: &str, strategy: &str) -> Value {
    json!({
        "title": format!("SSH brute force from {src}"),
        "type": "Investigation",
        "observables": [{ "kind": "ip", "value": src }, { "kind": "user", "value": "root" }],
        "dedupe": { "key": format!("{src}|ssh"), "window": "1h", "strategy": strategy },
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeat_noted_on_the_old_case_is_closed_as_its_duplicate_in_one_call() {
    let site = site();
    let served = Served::start(&site, &[]);
    let alice = token(&site, "alice");

    let first = call(
        &served,
        "POST",
        "/api/v1/cases",
        &alice,
        alert("198.51.100.7", "new_and_note"),
    )
    .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(first.body["created"], true);
    let old = first.body["id"].as_str().unwrap().to_owned();

    let repeat = call(
        &served,
        "POST",
        "/api/v1/cases",
        &alice,
        alert("198.51.100.7", "new_and_note"),
    )
    .await;
    assert_eq!(repeat.status, 201, "{:?}", repeat.body);
    assert_eq!(repeat.body["duplicate_of"], old.as_str());
    assert_eq!(repeat.body["strategy"], "new_and_note");
    let new = repeat.body["id"].as_str().unwrap().to_owned();

    // The old case shows the note and the call that closes it.
    let shown = get(served.addr, &format!("/api/v1/cases/{old}"), Some(&alice)).await;
    assert_eq!(shown.status, 200);
    let note = shown.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "possibly_related")
        .cloned()
        .expect("no possibly_related note on the old case");
    assert_eq!(note["case"], new.as_str());
    assert!(
        shown.body["comments"][0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("Might be related to case {new}"))
    );
    let action = &note["close_as_duplicate"];
    assert_eq!(action["method"], "POST");
    let closed = call(
        &served,
        "POST",
        action["path"].as_str().unwrap(),
        &alice,
        action["body"].clone(),
    )
    .await;
    assert_eq!(closed.status, 200, "{:?}", closed.body);
    assert_eq!(closed.body["duplicate_of"], new.as_str());

    let shown = get(served.addr, &format!("/api/v1/cases/{old}"), Some(&alice)).await;
    assert_eq!(shown.body["status"], "closed");
    assert_eq!(shown.body["resolution"], "duplicate");
    assert!(
        shown.body["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["kind"] == "duplicate"
                && l["case"] == new.as_str()
                && l["direction"] == "to"),
        "{:?}",
        shown.body["links"]
    );
    // Closed, the note offers nothing more; closing again is a conflict.
    assert!(
        shown.body["links"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l.get("close_as_duplicate").is_none())
    );
    let again = call(
        &served,
        "POST",
        &format!("/api/v1/cases/{old}/close"),
        &alice,
        json!({ "resolution": "benign" }),
    )
    .await;
    assert_eq!(again.status, 409, "{:?}", again.body);

    // drop_and_comment folds into the key's case (now the new one): 200, nothing opened.
    let dropped = call(
        &served,
        "POST",
        "/api/v1/cases",
        &alice,
        alert("198.51.100.7", "drop_and_comment"),
    )
    .await;
    assert_eq!(dropped.status, 200, "{:?}", dropped.body);
    assert_eq!(dropped.body["created"], false);
    assert_eq!(dropped.body["id"], new.as_str());
    let listed = get(served.addr, "/api/v1/cases?status=open", Some(&alice)).await;
    assert_eq!(listed.body["cases"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["cases"][0]["id"], new.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_is_worked_through_the_api_as_the_tokens_user() {
    let site = site();
    let served = Served::start(&site, &[]);
    let (alice, bob) = (token(&site, "alice"), token(&site, "bob"));

    let opened = call(&served, "POST", "/api/v1/cases", &alice, json!({
        "title": "Beacon to 203.0.113.9", "type": "Investigation",
        "observables": [{ "kind": "ip", "value": "203.0.113.9" }, { "kind": "domain", "value": "c2.example" }],
    }))
    .await;
    assert_eq!(opened.status, 201, "{:?}", opened.body);
    let id = opened.body["id"].as_str().unwrap().to_owned();
    let case = |suffix: &str| format!("/api/v1/cases/{id}{suffix}");

    let commented = call(
        &served,
        "POST",
        &case("/comments"),
        &bob,
        json!({ "text": "blocked at the proxy" }),
    )
    .await;
    assert_eq!(commented.status, 201, "{:?}", commented.body);
    let task = call(
        &served,
        "POST",
        &case("/tasks"),
        &alice,
        json!({ "title": "Reimage the host" }),
    )
    .await;
    assert_eq!(task.status, 201, "{:?}", task.body);
    assert_eq!(task.body["task"], 1);
    let done = call(&served, "PATCH", &case("/tasks/1"), &bob, json!({})).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body["done"], true);
    let updated = call(&served, "PATCH", &case(""), &alice, json!({
        "assignee": "bob", "severity": "high", "observables": [{ "kind": "host", "value": "ws-042" }],
    }))
    .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(
        updated.body["changed"],
        json!(["severity", "assignee", "observables"])
    );

    let shown = get(served.addr, &case(""), Some(&alice)).await.body;
    assert_eq!(shown["assignee"], "bob");
    assert_eq!(shown["severity"], "high");
    assert_eq!(shown["comments"][0]["author"], "bob");
    assert_eq!(shown["tasks"][0]["done_by"], "bob");
    assert_eq!(shown["observables"].as_array().unwrap().len(), 3);

    // A second case sharing the rare domain is similar; found by observable.
    let other = call(
        &served,
        "POST",
        "/api/v1/cases",
        &alice,
        json!({
            "title": "DNS to c2.example", "type": "Investigation",
            "observables": [{ "kind": "domain", "value": "c2.example" }],
        }),
    )
    .await;
    let other = other.body["id"].as_str().unwrap().to_owned();
    let similar = get(
        served.addr,
        &format!("/api/v1/cases/{other}/similar"),
        Some(&alice),
    )
    .await;
    assert_eq!(similar.status, 200, "{:?}", similar.body);
    assert_eq!(similar.body["similar"][0]["id"], id.as_str());
    assert_eq!(
        similar.body["similar"][0]["shared"],
        json!([{ "kind": "domain", "value": "c2.example" }])
    );
    let found = call(
        &served,
        "POST",
        "/api/v1/cases/find",
        &alice,
        json!({
            "observable": { "kind": "domain", "value": "c2.example" }, "type": "Investigation",
        }),
    )
    .await;
    assert_eq!(found.body["found"], 2, "{:?}", found.body);

    // Ignored, the domain says nothing about which cases belong together.
    let ignored = call(
        &served,
        "POST",
        "/api/v1/observables/ignored",
        &alice,
        json!({
            "kind": "domain", "value": "c2.example", "reason": "our sinkhole",
        }),
    )
    .await;
    assert_eq!(ignored.status, 200, "{:?}", ignored.body);
    let listed = get(served.addr, "/api/v1/observables/ignored", Some(&bob)).await;
    assert_eq!(
        listed.body["ignored"],
        json!([{ "kind": "domain", "value": "c2.example", "reason": "our sinkhole" }])
    );
    let similar = get(
        served.addr,
        &format!("/api/v1/cases/{other}/similar"),
        Some(&alice),
    )
    .await;
    assert_eq!(similar.body["similar"], json!([]));

    let linked = call(
        &served,
        "POST",
        &case("/links"),
        &alice,
        json!({ "to": other, "reason": "same C2" }),
    )
    .await;
    assert_eq!(linked.status, 201, "{:?}", linked.body);
    assert_eq!(linked.body["kind"], "linked");
    let closed = call(
        &served,
        "POST",
        &case("/close"),
        &alice,
        json!({ "resolution": "escalated" }),
    )
    .await;
    assert_eq!(closed.status, 200, "{:?}", closed.body);
    let listed = get(
        served.addr,
        "/api/v1/cases?status=closed&type=Investigation",
        Some(&alice),
    )
    .await;
    assert_eq!(listed.body["cases"][0]["id"], id.as_str());
    assert_eq!(listed.body["cases"][0]["links"][0]["case"], other.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_case_calls_are_refused_by_name_and_change_nothing() {
    let site = site();
    let served = Served::start(&site, &[]);
    let alice = token(&site, "alice");
    let mallory = token(&site, "mallory");

    let refusals = [
        (
            "POST",
            "/api/v1/cases".to_owned(),
            json!({ "title": "x", "type": "y", "dedupe": { "key": " ", "window": "5m" } }),
            400,
            "the dedupe key rendered empty",
        ),
        (
            "POST",
            "/api/v1/cases".to_owned(),
            json!({ "title": "x", "tpye": "y" }),
            400,
            "unknown field `tpye`",
        ),
        (
            "POST",
            "/api/v1/cases".to_owned(),
            json!({ "title": "x", "type": "y", "observables": [{ "kind": "ipv4", "value": "1.2.3.4" }] }),
            400,
            "`ipv4` is not a kind of observable",
        ),
        (
            "POST",
            "/api/v1/cases".to_owned(),
            json!({ "title": "x", "type": "y", "dedupe": { "key": "k", "window": "5m", "strategy": "merge" } }),
            400,
            "`merge` is not a dedupe strategy",
        ),
        (
            "POST",
            "/api/v1/cases/nope/comments".to_owned(),
            json!({ "text": "hi" }),
            404,
            "no case `nope`",
        ),
        (
            "POST",
            "/api/v1/cases/nope/comments".to_owned(),
            json!({ "id": "other", "text": "hi" }),
            400,
            "`id` is named by the path",
        ),
        (
            "POST",
            "/api/v1/cases/find".to_owned(),
            json!({ "key": "k", "type": "Enrichment" }),
            400,
            "narrow a search by `observable`",
        ),
        (
            "GET",
            "/api/v1/cases?status=pending".to_owned(),
            Value::Null,
            400,
            "status `pending` is not open or closed",
        ),
        (
            "GET",
            "/api/v1/cases/nope".to_owned(),
            Value::Null,
            404,
            "no case `nope`",
        ),
        (
            "POST",
            "/api/v1/observables/ignored".to_owned(),
            json!({ "kind": "mac", "value": "aa" }),
            400,
            "`mac` is not a kind of observable",
        ),
    ];
    for (method, path, body, status, says) in refusals {
        let answer = call(&served, method, &path, &alice, body).await;
        assert_eq!(answer.status, status, "{method} {path}: {:?}", answer.body);
        assert!(
            message(&answer).contains(says),
            "{method} {path}: {:?}",
            answer.body
        );
    }
    let stranger = call(
        &served,
        "POST",
        "/api/v1/cases",
        &mallory,
        json!({ "title": "x", "type": "y" }),
    )
    .await;
    assert_eq!(stranger.status, 403, "{:?}", stranger.body);
    assert!(message(&stranger).contains("`mallory` is not a user in [users]"));
    let anonymous = request(served.addr, "GET", "/api/v1/cases", &[], "").await;
    assert_eq!(anonymous.status, 401);

    // Nothing of that was stored.
    let listed = get(served.addr, "/api/v1/cases", Some(&alice)).await;
    assert_eq!(listed.body["cases"], json!([]));
}
