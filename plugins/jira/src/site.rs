//! The Jira being talked to: where it is, which deployment, and how its
//! answers — good and bad — are read.

use aerie_sdk::{Error, http};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::multipart::Form;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// REST v3: ADF text fields, `/search/jql`.
    Cloud,
    /// REST v2: plain text fields, `/search` with `startAt`.
    DataCenter,
}

#[derive(Debug)]
pub struct Site {
    pub base: String,
    pub deployment: Deployment,
    pub project: Option<String>,
}

/// Where a search goes on from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Start,
    /// Cloud's opaque `nextPageToken`.
    Token(String),
    /// Data Center's `startAt`.
    At(u32),
}

impl Site {
    pub fn from_settings() -> Result<Site, Error> {
        let base = aerie_sdk::setting("base_url")
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| Error::invalid_input("the `base_url` setting is not set"))?;
        let deployment = match aerie_sdk::setting("deployment").as_deref() {
            None | Some("cloud") => Deployment::Cloud,
            Some("datacenter") => Deployment::DataCenter,
            Some(other) => {
                return Err(Error::invalid_input(format!(
                    "the `deployment` setting is `{other}`: use cloud or datacenter"
                )));
            }
        };
        Ok(Site {
            base: base.trim_end_matches('/').to_owned(),
            deployment,
            project: aerie_sdk::setting("project").filter(|p| !p.trim().is_empty()),
        })
    }

    fn url(&self, path: &str) -> String {
        let version = match self.deployment {
            Deployment::Cloud => 3,
            Deployment::DataCenter => 2,
        };
        format!("{}/rest/api/{version}/{path}", self.base)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let response = http::get(&self.url(path))
            .header("accept", "application/json")
            .send()?;
        read(response)
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, Error> {
        read(self.send_json(path, body)?)
    }

    /// A POST whose success has no body (a transition's 204).
    pub fn post_empty(&self, path: &str, body: &impl Serialize) -> Result<(), Error> {
        checked(self.send_json(path, body)?).map(drop)
    }

    fn send_json(&self, path: &str, body: &impl Serialize) -> Result<http::Response, Error> {
        http::post(&self.url(path))
            .header("accept", "application/json")
            .json(body)?
            .send()
    }

    pub fn post_multipart<T: DeserializeOwned>(&self, path: &str, form: &Form) -> Result<T, Error> {
        let response = http::post(&self.url(path))
            .header("accept", "application/json")
            .header("content-type", &form.content_type())
            // Jira refuses attachments without it (XSRF protection).
            .header("x-atlassian-token", "no-check")
            .body(form.body())
            .send()?;
        read(response)
    }

    /// One page of a search: the issues, and where the next page starts if
    /// there is one.
    pub fn search_page(
        &self,
        jql: &str,
        fields: &[String],
        max: u32,
        cursor: &Cursor,
    ) -> Result<(Vec<Value>, Option<Cursor>), Error> {
        match self.deployment {
            Deployment::Cloud => {
                let mut body = json!({ "jql": jql, "maxResults": max, "fields": fields });
                if let Cursor::Token(token) = cursor {
                    body["nextPageToken"] = token.as_str().into();
                }
                let page: Value = self.post("search/jql", &body)?;
                let next = match (&page["nextPageToken"], &page["isLast"]) {
                    (_, Value::Bool(true)) | (Value::Null, _) => None,
                    (Value::String(token), _) => Some(Cursor::Token(token.clone())),
                    _ => None,
                };
                Ok((issues(&page)?, next))
            }
            Deployment::DataCenter => {
                let start = match cursor {
                    Cursor::At(at) => *at,
                    _ => 0,
                };
                let body =
                    json!({ "jql": jql, "startAt": start, "maxResults": max, "fields": fields });
                let page: Value = self.post("search", &body)?;
                let issues = issues(&page)?;
                let total = page["total"].as_u64().unwrap_or(0);
                let after = u64::from(start) + issues.len() as u64;
                let next = (after < total).then_some(Cursor::At(after as u32));
                Ok((issues, next))
            }
        }
    }
}

fn issues(page: &Value) -> Result<Vec<Value>, Error> {
    page["issues"]
        .as_array()
        .cloned()
        .ok_or_else(|| Error::upstream("Jira's search answer has no `issues` list"))
}

/// An issue key (`SOC-12`) or id (`10042`) as it may stand in a path: a
/// value that could step out of it (`../`, `?`) is refused.
pub fn issue_key(issue: &str) -> Result<&str, Error> {
    let issue = issue.trim();
    let fits = !issue.is_empty()
        && issue.len() <= 64
        && issue
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fits {
        Ok(issue)
    } else {
        Err(Error::invalid_input(format!(
            "`{issue}` is not an issue key (SOC-12) or id"
        )))
    }
}

/// A successful answer's JSON, or the error its status means.
fn read<T: DeserializeOwned>(response: http::Response) -> Result<T, Error> {
    let response = checked(response)?;
    serde_json::from_slice(&response.body).map_err(|e| {
        Error::upstream(format!(
            "Jira answered {} with something that is not the JSON expected ({e}): {}",
            response.status,
            excerpt(&response.body)
        ))
    })
}

/// The response if it succeeded; else an error carrying Jira's own
/// `errorMessages` and `errors`, with the code its status means.
fn checked(response: http::Response) -> Result<http::Response, Error> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let detail = detail(&response.body);
    Err(match status {
        400 => Error::invalid_input(format!("Jira refused the request: {detail}")),
        401 => Error::unauthorized(format!(
            "Jira refused the credential (401): {detail}; Cloud takes `EMAIL:API_TOKEN` bound to `api_token`, Data Center a token bound to `pat`"
        )),
        403 => Error::unauthorized(format!("Jira forbids it (403): {detail}")),
        // Jira answers 404 alike for "no such issue" and "not yours to see".
        404 => Error::not_found(format!(
            "Jira found nothing there, or nothing this account may see (404): {detail}"
        )),
        410 => Error::upstream(format!("Jira removed this API (410): {detail}")),
        429 => {
            let after = response
                .header("retry-after")
                .map(|s| format!("; retry after {s} s"))
                .unwrap_or_default();
            Error::rate_limited(format!("Jira's rate limit (429){after}: {detail}"))
        }
        500..=599 => Error::upstream(format!("Jira failed ({status}): {detail}")).retryable(true),
        _ => Error::upstream(format!("Jira answered {status}: {detail}")),
    })
}

/// Jira's `{"errorMessages": [...], "errors": {field: message}}`, as one
/// line; the body's start when it is not that.
fn detail(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return excerpt(body);
    };
    let mut parts: Vec<String> = value["errorMessages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    if let Some(errors) = value["errors"].as_object() {
        parts.extend(
            errors
                .iter()
                .map(|(field, m)| format!("{field}: {}", m.as_str().unwrap_or_default())),
        );
    }
    if parts.is_empty() {
        excerpt(body)
    } else {
        parts.join("; ")
    }
}

/// The first 200 characters of a body, for a message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no body)".to_owned();
    }
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jira_errors_are_read_into_one_line() {
        let body = br#"{"errorMessages":["Issue does not exist"],"errors":{"summary":"You must specify a summary of the issue."}}"#;
        assert_eq!(
            detail(body),
            "Issue does not exist; summary: You must specify a summary of the issue."
        );
        assert_eq!(
            detail(b"<html>Bad gateway</html>"),
            "<html>Bad gateway</html>"
        );
        assert_eq!(detail(b""), "(no body)");
    }

    #[test]
    fn an_issue_key_cannot_step_out_of_its_path() {
        assert_eq!(issue_key(" SOC-12 ").unwrap(), "SOC-12");
        assert_eq!(issue_key("10042").unwrap(), "10042");
        for bad in ["../../admin", "SOC-1?x=1", "", "SOC 1"] {
            assert!(issue_key(bad).is_err(), "{bad}");
        }
    }
}
