//! An RDAP answer (RFC 9083) read into what an analyst asks of it: who holds
//! it, since when, and whom to tell about abuse.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Ip,
    Domain,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    pub query: String,
    pub kind: Kind,
    /// The registry has a record of it.
    pub found: bool,
    pub handle: Option<String>,
    /// The network's name, or the domain's.
    pub name: Option<String>,
    /// IP networks: the range's first and last address.
    pub start_address: Option<String>,
    pub end_address: Option<String>,
    pub country: Option<String>,
    /// The registrant's or holder's name (a vCard `fn`).
    pub holder: Option<String>,
    /// Domains: the registrar's name.
    pub registrar: Option<String>,
    /// E-mail addresses of the `abuse` contacts.
    pub abuse: Vec<String>,
    /// RFC 3339 dates of the `registration`, `last changed` and
    /// `expiration` events.
    pub registered: Option<String>,
    pub last_changed: Option<String>,
    pub expires: Option<String>,
    /// Domains: `client transfer prohibited`, ...
    pub status: Vec<String>,
    pub nameservers: Vec<String>,
}

impl Output {
    pub fn not_found(query: &str, kind: Kind) -> Output {
        Output {
            query: query.to_owned(),
            kind,
            found: false,
            handle: None,
            name: None,
            start_address: None,
            end_address: None,
            country: None,
            holder: None,
            registrar: None,
            abuse: Vec::new(),
            registered: None,
            last_changed: None,
            expires: None,
            status: Vec::new(),
            nameservers: Vec::new(),
        }
    }
}

pub fn read(query: &str, kind: Kind, body: &Value) -> Output {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let event = |action: &str| {
        body["events"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["eventAction"] == action)
            .and_then(|e| text(&e["eventDate"]))
    };
    let mut entities = Vec::new();
    collect(&body["entities"], 0, &mut entities);
    let with_role = |role: &'static str| {
        entities.iter().filter(move |e| {
            e["roles"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x == role))
        })
    };
    let holder = with_role("registrant")
        .chain(with_role("holder"))
        .find_map(|e| vcard(e, "fn"));
    Output {
        query: query.to_owned(),
        kind,
        found: true,
        handle: text(&body["handle"]),
        name: text(&body["name"]).or_else(|| text(&body["ldhName"])),
        start_address: text(&body["startAddress"]),
        end_address: text(&body["endAddress"]),
        country: text(&body["country"]),
        holder,
        registrar: with_role("registrar").find_map(|e| vcard(e, "fn")),
        abuse: with_role("abuse")
            .filter_map(|e| vcard(e, "email"))
            .collect(),
        registered: event("registration"),
        last_changed: event("last changed"),
        expires: event("expiration"),
        status: body["status"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(text)
            .collect(),
        nameservers: body["nameservers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| text(&n["ldhName"]))
            .collect(),
    }
}

/// Every entity, nested ones too (a registrar's abuse contact sits inside
/// the registrar), at most four deep.
fn collect<'a>(entities: &'a Value, depth: usize, into: &mut Vec<&'a Value>) {
    if depth > 4 {
        return;
    }
    for entity in entities.as_array().into_iter().flatten() {
        into.push(entity);
        collect(&entity["entities"], depth + 1, into);
    }
}

/// A property of an entity's jCard (RFC 7095): `["vcard", [[name, {}, type, value], ...]]`.
fn vcard(entity: &Value, property: &str) -> Option<String> {
    entity["vcardArray"][1]
        .as_array()?
        .iter()
        .find(|p| p[0] == property)
        .and_then(|p| p[3].as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_network_its_holder_and_its_nested_abuse_contact() {
        let body = json!({
            "objectClassName": "ip network", "handle": "NET-192-0-2-0-1", "name": "TEST-NET-1",
            "startAddress": "192.0.2.0", "endAddress": "192.0.2.255", "country": "US",
            "events": [{ "eventAction": "registration", "eventDate": "2010-01-01T00:00:00Z" }],
            "entities": [{
                "roles": ["registrant"],
                "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Example Org"]]],
                "entities": [{
                    "roles": ["abuse"],
                    "vcardArray": ["vcard", [["fn", {}, "text", "Abuse"], ["email", {}, "text", "abuse@example.org"]]],
                }],
            }],
        });
        let out = read("192.0.2.7", Kind::Ip, &body);
        assert_eq!(out.holder.as_deref(), Some("Example Org"));
        assert_eq!(out.abuse, ["abuse@example.org"]);
        assert_eq!(out.registered.as_deref(), Some("2010-01-01T00:00:00Z"));
        assert_eq!(out.start_address.as_deref(), Some("192.0.2.0"));
    }
}
