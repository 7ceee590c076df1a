//! `cape`: detonation in a CAPE sandbox (the maintained Cuckoo successor),
//! through its REST API v2.
//!
//! `submit` sends a URL to be detonated (`POST /apiv2/tasks/create/url/`),
//! or finds the analyses of a sample CAPE already holds by its hash
//! (`GET /apiv2/tasks/search/{md5,sha1,sha256}/HASH/`): a hash alone cannot
//! be detonated. `report` reads a task's report once CAPE has written it;
//! until then it fails *retryably*, so a playbook step with `retry:` polls
//! with backoff, durably, without holding a sandbox instance while it waits.

use aerie_sdk::{Actions, Error, ErrorCode, Plugin, http};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct Cape;

impl Plugin for Cape {
    fn actions() -> Actions {
        Actions::new()
            .action(
                "submit",
                "Detonate a URL, or find a sample's analyses by its hash",
                submit,
            )
            .action(
                "report",
                "A task's score and signatures, once reported",
                report,
            )
    }
}

aerie_sdk::export!(Cape);

/// Signatures listed at most.
const MAX_SIGNATURES: usize = 30;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitInput {
    /// A URL to detonate.
    pub url: Option<String>,
    /// Or the MD5, SHA-1 or SHA-256 of a sample CAPE may hold.
    pub hash: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Submitted {
    /// The URL or hash submitted, as given.
    pub target: String,
    /// The task to ask `report` about; none when CAPE holds no such sample.
    pub task_id: Option<u64>,
    /// A URL, or a sample CAPE holds: there is something to report on.
    pub available: bool,
    /// The task existed already (a hash's latest analysis).
    pub existing: bool,
}

fn submit(input: SubmitInput) -> Result<Submitted, Error> {
    let base = base()?;
    match (input.url, input.hash) {
        (Some(url), None) => {
            let lower = url.trim().to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                return Err(Error::invalid_input(format!(
                    "`{url}` is not an http(s) URL"
                )));
            }
            let form = format!("url={}", form_encode(url.trim()));
            let response = http::post(&format!("{base}/apiv2/tasks/create/url/"))
                .header("accept", "application/json")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()?;
            let answer = read(&response)?;
            let task = answer["data"]["task_ids"][0]
                .as_u64()
                .ok_or_else(|| Error::upstream("CAPE's answer names no task id"))?;
            Ok(Submitted {
                target: url,
                task_id: Some(task),
                available: true,
                existing: false,
            })
        }
        (None, Some(hash)) => {
            let hash = hash.trim().to_ascii_lowercase();
            let algorithm = match hash.len() {
                32 => "md5",
                40 => "sha1",
                64 => "sha256",
                _ => {
                    return Err(Error::invalid_input(format!(
                        "`{hash}` is not an MD5, SHA-1 or SHA-256"
                    )));
                }
            };
            if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::invalid_input(format!("`{hash}` is not hexadecimal")));
            }
            let response = http::get(&format!("{base}/apiv2/tasks/search/{algorithm}/{hash}/"))
                .header("accept", "application/json")
                .send()?;
            let answer = read(&response)?;
            let latest = answer["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|task| task["id"].as_u64())
                .max();
            Ok(Submitted {
                target: hash,
                task_id: latest,
                available: latest.is_some(),
                existing: latest.is_some(),
            })
        }
        _ => Err(Error::invalid_input("give one of `url` or `hash`")),
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    pub task_id: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Report {
    pub task_id: u64,
    /// CAPE's score, 0 (nothing seen) to 10.
    pub malscore: f64,
    /// At least the `malicious_score` setting.
    pub malicious: bool,
    /// `malicious` or `clean`.
    pub verdict: String,
    /// `{name, severity, description}` of each signature that fired, at most 30.
    pub signatures: Vec<Value>,
    /// Malware families CAPE recognised.
    pub detections: Vec<String>,
}

fn report(input: ReportInput) -> Result<Report, Error> {
    let base = base()?;
    let task = input.task_id;
    let status = read(&http::get(&format!("{base}/apiv2/tasks/status/{task}/")).send()?)?;
    let status = status["data"].as_str().unwrap_or_default().to_owned();
    match status.as_str() {
        "reported" => {}
        "pending" | "running" | "completed" | "distributed" | "recovered" => {
            return Err(Error::new(
                ErrorCode::Timeout,
                format!("CAPE task {task} is `{status}`: not reported yet"),
            ));
        }
        failed => {
            return Err(Error::upstream(format!(
                "CAPE task {task} ended `{failed}`: no report"
            )));
        }
    }
    let response = http::get(&format!("{base}/apiv2/tasks/get/report/{task}/"))
        .header("accept", "application/json")
        .send()?;
    let body = read(&response)?;
    let malscore = body["malscore"].as_f64().unwrap_or(0.0);
    let threshold = aerie_sdk::setting("malicious_score")
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(6.0);
    let signatures = body["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .take(MAX_SIGNATURES)
        .map(|s| json!({ "name": s["name"], "severity": s["severity"], "description": s["description"] }))
        .collect();
    let detections = body["detections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["family"].as_str().or(d.as_str()).map(str::to_owned))
        .collect();
    let malicious = malscore >= threshold;
    Ok(Report {
        task_id: task,
        malscore,
        malicious,
        verdict: if malicious { "malicious" } else { "clean" }.to_owned(),
        signatures,
        detections,
    })
}

fn base() -> Result<String, Error> {
    aerie_sdk::setting("base_url")
        .filter(|b| !b.trim().is_empty())
        .map(|b| b.trim_end_matches('/').to_owned())
        .ok_or_else(|| Error::invalid_input("the `base_url` setting is not set"))
}

/// A successful answer's JSON; CAPE reports its own failures as
/// `{"error": true, "error_value": "..."}`, sometimes with status 200.
fn read(response: &http::Response) -> Result<Value, Error> {
    let body: Result<Value, _> = serde_json::from_slice(&response.body);
    let detail = body
        .as_ref()
        .ok()
        .and_then(|v| v["error_value"].as_str().or(v["detail"].as_str()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("status {}", response.status));
    match response.status {
        200..=299 => {}
        401 | 403 => {
            return Err(Error::unauthorized(format!(
                "CAPE refused the token ({detail})"
            )));
        }
        404 => {
            return Err(Error::not_found(format!(
                "CAPE has no such task or sample ({detail})"
            )));
        }
        429 => return Err(Error::rate_limited(format!("CAPE's rate limit ({detail})"))),
        500..=599 => return Err(Error::upstream(format!("CAPE failed ({detail})")).retryable(true)),
        status => {
            return Err(Error::upstream(format!(
                "CAPE answered {status} ({detail})"
            )));
        }
    }
    let body = body.map_err(|e| Error::upstream(format!("CAPE's answer is not JSON: {e}")))?;
    if body["error"] == true {
        return Err(Error::upstream(format!("CAPE refused it: {detail}")));
    }
    Ok(body)
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_is_form_encoded() {
        assert_eq!(
            super::form_encode("http://a.example/x?y=1&z=2 3"),
            "http%3A%2F%2Fa.example%2Fx%3Fy%3D1%26z%3D2+3"
        );
    }
}
