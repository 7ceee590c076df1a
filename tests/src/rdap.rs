//! An RDAP server (RFC 7480/9083): `GET /ip/{addr}` and `GET
//! /domain/{name}` as `application/rdap+json` for the fixtures below, RFC
//! 9083's error body with 404 for anything else. Like a redirector
//! (rdap.org), it answers `/ip/203.0.113.5` with a 302 to the authoritative
//! path `/registry/ip/203.0.113.5`.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

#[derive(Debug, Default)]
pub struct StandIn {
    /// The paths asked for, in order.
    asked: Mutex<Vec<String>>,
}

impl StandIn {
    pub fn new() -> Arc<StandIn> {
        Arc::new(StandIn::default())
    }

    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/ip/{addr}", get(ip))
            .route("/registry/ip/{addr}", get(ip))
            .route("/domain/{name}", get(domain))
            .with_state(self.clone())
    }

    fn ask(&self, path: String) {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path);
    }
}

fn rdap(body: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/rdap+json")],
        body.to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    let body = json!({ "errorCode": 404, "title": "Not Found", "description": ["No record matches the query."] });
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/rdap+json")],
        body.to_string(),
    )
        .into_response()
}

fn entity(role: &str, name: &str, email: &str) -> Value {
    json!({
        "objectClassName": "entity", "roles": [role],
        "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", name], ["email", {}, "text", email]]],
    })
}

async fn ip(
    State(stand_in): State<Arc<StandIn>>,
    uri: axum::http::Uri,
    Path(addr): Path<String>,
) -> Response {
    stand_in.ask(uri.path().to_owned());
    let (handle, name, start, end, holder) = match addr.as_str() {
        "185.220.101.1" => (
            "NET-185-220-100-0-1",
            "TOR-EXITS",
            "185.220.100.0",
            "185.220.101.255",
            "Tor exit relay operator",
        ),
        "8.8.8.8" => (
            "NET-8-8-8-0-2",
            "GOGL",
            "8.8.8.0",
            "8.8.8.255",
            "Google LLC",
        ),
        "203.0.113.5" if uri.path().starts_with("/ip/") => {
            return (
                StatusCode::FOUND,
                [(header::LOCATION, "/registry/ip/203.0.113.5")],
            )
                .into_response();
        }
        "203.0.113.5" => (
            "NET-203-0-113-0-1",
            "TEST-NET-3",
            "203.0.113.0",
            "203.0.113.255",
            "Documentation",
        ),
        _ => return not_found(),
    };
    let mut registrant = entity("registrant", holder, "noc@holder.example");
    registrant["entities"] = json!([entity("abuse", "Abuse desk", "abuse@holder.example")]);
    rdap(json!({
        "rdapConformance": ["rdap_level_0"], "objectClassName": "ip network", "handle": handle,
        "startAddress": start, "endAddress": end, "ipVersion": "v4", "name": name, "type": "ASSIGNED",
        "country": "DE",
        "events": [{ "eventAction": "registration", "eventDate": "2017-05-02T00:00:00Z" },
                   { "eventAction": "last changed", "eventDate": "2025-11-20T10:00:00Z" }],
        "entities": [registrant],
    }))
}

async fn domain(State(stand_in): State<Arc<StandIn>>, Path(name): Path<String>) -> Response {
    stand_in.ask(format!("/domain/{name}"));
    let (registered, registrar) = match name.as_str() {
        "login-paypal-secure.com" => ("2026-11-30T08:12:00Z", "Cheap Names Inc."),
        "example.com" => (
            "1995-08-14T04:00:00Z",
            "RESERVED-Internet Assigned Numbers Authority",
        ),
        _ => return not_found(),
    };
    rdap(json!({
        "rdapConformance": ["rdap_level_0"], "objectClassName": "domain", "ldhName": name,
        "handle": format!("{}_DOMAIN_COM-VRSN", name.to_ascii_uppercase()),
        "status": ["client transfer prohibited"],
        "nameservers": [{ "objectClassName": "nameserver", "ldhName": "ns1.registrar.example" }],
        "events": [{ "eventAction": "registration", "eventDate": registered },
                   { "eventAction": "expiration", "eventDate": "2027-11-30T08:12:00Z" }],
        "entities": [entity("registrar", registrar, "abuse@registrar.example")],
    }))
}
