//! `snipeit`: what asset management knows of a machine — Snipe-IT's
//! hardware by hostname (a search), serial or asset tag (exact lookups).
//! The token is added by the host's broker as `Authorization: Bearer`.

use aerie_sdk::{Actions, Error, Plugin, http};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct SnipeIt;

impl Plugin for SnipeIt {
    fn actions() -> Actions {
        Actions::new().action(
            "hardware",
            "The assets matching a hostname, a serial or an asset tag",
            hardware,
        )
    }
}

aerie_sdk::export!(SnipeIt);

/// Assets one search returns at most.
const LIMIT: u32 = 20;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// A hostname (searched), or:
    pub hostname: Option<String>,
    /// a serial number (exact), or:
    pub serial: Option<String>,
    /// an asset tag (exact).
    pub asset_tag: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// How many Snipe-IT holds that match.
    pub total: u64,
    /// `{id, name, asset_tag, serial, model, status, assigned_to, location}`, at most 20.
    pub assets: Vec<Value>,
    pub truncated: bool,
}

fn hardware(input: Input) -> Result<Output, Error> {
    let base = aerie_sdk::setting("base_url")
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| Error::invalid_input("the `base_url` setting is not set"))?;
    let base = base.trim_end_matches('/');
    for value in [&input.hostname, &input.serial, &input.asset_tag]
        .into_iter()
        .flatten()
    {
        // `.` and `..` would be read as path steps, not as a value.
        if !value.trim().chars().any(char::is_alphanumeric) {
            return Err(Error::invalid_input(format!("`{value}` names no asset")));
        }
    }
    let url = match (input.hostname, input.serial, input.asset_tag) {
        (Some(name), None, None) => format!(
            "{base}/api/v1/hardware?search={}&limit={LIMIT}",
            http::encode(name.trim())
        ),
        (None, Some(serial), None) => {
            format!(
                "{base}/api/v1/hardware/byserial/{}",
                http::encode(serial.trim())
            )
        }
        (None, None, Some(tag)) => {
            format!("{base}/api/v1/hardware/bytag/{}", http::encode(tag.trim()))
        }
        _ => {
            return Err(Error::invalid_input(
                "give one of `hostname`, `serial` or `asset_tag`",
            ));
        }
    };
    let response = http::get(&url)
        .header("accept", "application/json")
        .send()?;
    let body: Value = match response.status {
        200 => response.json()?,
        404 => {
            return Ok(Output {
                total: 0,
                assets: Vec::new(),
                truncated: false,
            });
        }
        status => return Err(api_error(status, &response)),
    };
    // Snipe-IT answers some failures with 200 and `{"status": "error", "messages": ...}`:
    // a tag or serial it does not know is one.
    if body["status"] == "error" {
        let messages = body["messages"].to_string();
        if messages.to_ascii_lowercase().contains("not found")
            || messages.contains("does not exist")
        {
            return Ok(Output {
                total: 0,
                assets: Vec::new(),
                truncated: false,
            });
        }
        return Err(Error::upstream(format!("Snipe-IT refused it: {messages}")));
    }
    // A list (`{total, rows}`) for a search and a serial; one asset for a tag.
    let (total, rows) = match body["rows"].as_array() {
        Some(rows) => (
            body["total"].as_u64().unwrap_or(rows.len() as u64),
            rows.clone(),
        ),
        None => (1, vec![body]),
    };
    let assets: Vec<Value> = rows.iter().take(LIMIT as usize).map(asset).collect();
    Ok(Output {
        truncated: total > assets.len() as u64,
        total,
        assets,
    })
}

fn asset(row: &Value) -> Value {
    json!({
        "id": row["id"],
        "name": row["name"],
        "asset_tag": row["asset_tag"],
        "serial": row["serial"],
        "model": row["model"]["name"],
        "status": row["status_label"]["name"],
        "assigned_to": row["assigned_to"]["name"],
        "location": row["location"]["name"],
    })
}

fn api_error(status: u16, response: &http::Response) -> Error {
    let detail = response
        .json::<Value>()
        .ok()
        .and_then(|v| {
            v["messages"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| v["message"].as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| format!("status {status}"));
    match status {
        401 | 403 => Error::unauthorized(format!("Snipe-IT refused the token ({detail})")),
        429 => Error::rate_limited(format!("Snipe-IT's rate limit ({detail})")),
        400 | 422 => Error::invalid_input(format!("Snipe-IT refused the request ({detail})")),
        500..=599 => Error::upstream(format!("Snipe-IT failed ({detail})")).retryable(true),
        _ => Error::upstream(format!("Snipe-IT answered {status} ({detail})")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_value_cannot_step_out_of_its_path() {
        assert_eq!(
            aerie_sdk::http::encode("../admin?x=1"),
            "..%2Fadmin%3Fx%3D1"
        );
    }
}
