//! `jira`: issues in Jira Cloud (REST v3) or Data Center (REST v2), chosen by
//! the `deployment` setting.
//!
//! The credential never reaches this code: Cloud's `EMAIL:API_TOKEN` (Basic)
//! or Data Center's personal access token (Bearer) is added by the host's
//! broker as each request leaves. What differs between the two is kept in
//! [`site::Site`]: the API version, text fields (Atlassian Document Format on
//! v3, plain text on v2) and search (`/rest/api/3/search/jql` paged by
//! `nextPageToken` on Cloud, where the old `/search` answers 410 since 2025;
//! `/rest/api/2/search` by `startAt` on Data Center).

mod adf;
mod multipart;
mod site;

use aerie_sdk::{Actions, Error, Plugin};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use site::{Deployment, Site};

struct Jira;

impl Plugin for Jira {
    fn actions() -> Actions {
        Actions::new()
            .action("create_issue", "Create an issue", create_issue)
            .action("comment", "Comment on an issue", comment)
            .action(
                "transition",
                "Move an issue through its workflow, by transition or status name",
                transition,
            )
            .action("search", "Find issues with JQL", search)
            .action("attach", "Attach a text file to an issue", attach)
    }
}

aerie_sdk::export!(Jira);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInput {
    /// The project key; the `project` setting when absent.
    pub project: Option<String>,
    /// The issue type's name: Task, Bug, Investigation, ...
    #[serde(rename = "type", default = "task")]
    pub kind: String,
    pub summary: String,
    /// Plain text; paragraphs are separated by blank lines.
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: Vec<String>,
    /// More fields as Jira names them (`priority`, `customfield_10010`, ...).
    #[serde(default)]
    pub fields: Map<String, Value>,
}

fn task() -> String {
    "Task".to_owned()
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Created {
    pub id: String,
    pub key: String,
    /// The issue's page.
    pub url: String,
}

fn create_issue(input: CreateInput) -> Result<Created, Error> {
    let site = Site::from_settings()?;
    let project = match input.project.filter(|p| !p.trim().is_empty()) {
        Some(project) => project,
        None => site
            .project
            .clone()
            .ok_or_else(|| Error::invalid_input("no `project` given and no `project` setting"))?,
    };
    if input.summary.trim().is_empty() {
        return Err(Error::invalid_input("`summary` is empty"));
    }
    let mut fields = input.fields;
    fields.insert("project".into(), json!({ "key": project }));
    fields.insert("issuetype".into(), json!({ "name": input.kind }));
    fields.insert("summary".into(), input.summary.into());
    if !input.description.is_empty() {
        fields.insert("description".into(), site.text(&input.description));
    }
    if !input.labels.is_empty() {
        fields.insert("labels".into(), input.labels.into());
    }
    let created: Value = site.post("issue", &json!({ "fields": fields }))?;
    let key = string(&created, "key")?;
    Ok(Created {
        id: string(&created, "id")?,
        url: format!("{}/browse/{key}", site.base),
        key,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentInput {
    /// The issue's key (SOC-12) or id.
    pub issue: String,
    pub text: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Commented {
    pub issue: String,
    /// The comment's id.
    pub id: String,
}

fn comment(input: CommentInput) -> Result<Commented, Error> {
    let site = Site::from_settings()?;
    let issue = site::issue_key(&input.issue)?;
    if input.text.trim().is_empty() {
        return Err(Error::invalid_input("`text` is empty"));
    }
    let body = json!({ "body": site.text(&input.text) });
    let made: Value = site.post(&format!("issue/{issue}/comment"), &body)?;
    Ok(Commented {
        issue: input.issue,
        id: string(&made, "id")?,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionInput {
    pub issue: String,
    /// A transition's name ("Start Progress") or the status it leads to
    /// ("In Progress"), compared without case.
    pub to: String,
    /// A comment added with the transition.
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Transitioned {
    pub issue: String,
    /// The transition taken: `{id, name}`.
    pub transition: Value,
    /// The status it leads to.
    pub status: String,
}

fn transition(input: TransitionInput) -> Result<Transitioned, Error> {
    let site = Site::from_settings()?;
    let issue = site::issue_key(&input.issue)?;
    let path = format!("issue/{issue}/transitions");
    let offered: Value = site.get(&path)?;
    let transitions = offered["transitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let wanted = input.to.trim();
    let same = |v: &Value| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(wanted));
    let Some(chosen) = transitions
        .iter()
        .find(|t| same(&t["name"]) || same(&t["to"]["name"]))
    else {
        let names: Vec<String> = transitions
            .iter()
            .map(|t| {
                format!(
                    "{} (to {})",
                    t["name"].as_str().unwrap_or("?"),
                    t["to"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect();
        return Err(Error::invalid_input(format!(
            "{issue} offers no transition named or leading to `{wanted}`; it offers: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    let mut body = json!({ "transition": { "id": chosen["id"] } });
    if let Some(text) = input.comment.filter(|c| !c.trim().is_empty()) {
        body["update"] = json!({ "comment": [{ "add": { "body": site.text(&text) } }] });
    }
    site.post_empty(&path, &body)?;
    Ok(Transitioned {
        issue: input.issue,
        transition: json!({ "id": chosen["id"], "name": chosen["name"] }),
        status: chosen["to"]["name"].as_str().unwrap_or_default().to_owned(),
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchInput {
    /// A bounded JQL query: Cloud refuses one with no condition.
    pub jql: String,
    /// The most issues to return (1 to 1000; 50).
    #[serde(default = "fifty")]
    pub max_results: u32,
    /// Fields to return beside summary and status.
    #[serde(default)]
    pub fields: Vec<String>,
}

fn fifty() -> u32 {
    50
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Found {
    /// `{id, key, summary, status, fields}`, in Jira's order.
    pub issues: Vec<Value>,
    pub count: usize,
    /// More matched than `max_results`.
    pub truncated: bool,
}

/// The most issues one page asks for (Jira's cap when fields are asked).
const PAGE: u32 = 100;

fn search(input: SearchInput) -> Result<Found, Error> {
    let site = Site::from_settings()?;
    if input.jql.trim().is_empty() {
        return Err(Error::invalid_input(
            "`jql` is empty: Jira Cloud refuses an unbounded search",
        ));
    }
    if !(1..=1000).contains(&input.max_results) {
        return Err(Error::invalid_input(format!(
            "`max_results` must be 1 to 1000, not {}",
            input.max_results
        )));
    }
    let mut fields = vec!["summary".to_owned(), "status".to_owned()];
    fields.extend(input.fields);
    let mut issues = Vec::new();
    let mut cursor = site::Cursor::Start;
    let truncated = loop {
        let want = (input.max_results - issues.len() as u32).min(PAGE);
        let (page, next) = site.search_page(&input.jql, &fields, want, &cursor)?;
        let got = page.len();
        issues.extend(page.iter().map(summary));
        if issues.len() >= input.max_results as usize {
            issues.truncate(input.max_results as usize);
            break next.is_some();
        }
        match next {
            // A page that brought nothing cannot bring more: stop rather than loop.
            Some(next) if got > 0 => cursor = next,
            _ => break false,
        }
    };
    Ok(Found {
        count: issues.len(),
        issues,
        truncated,
    })
}

fn summary(issue: &Value) -> Value {
    json!({
        "id": issue["id"],
        "key": issue["key"],
        "summary": issue["fields"]["summary"],
        "status": issue["fields"]["status"]["name"],
        "fields": issue["fields"],
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachInput {
    pub issue: String,
    /// The file's name as Jira shows it: `siem-hits.json`.
    pub filename: String,
    /// The file's text (a report, search results as JSON, ...).
    pub content: String,
    #[serde(default = "text_plain")]
    pub content_type: String,
}

fn text_plain() -> String {
    "text/plain".to_owned()
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Attached {
    pub issue: String,
    /// `{id, filename, size}` of each attachment made.
    pub attachments: Vec<Value>,
}

fn attach(input: AttachInput) -> Result<Attached, Error> {
    let site = Site::from_settings()?;
    let issue = site::issue_key(&input.issue)?;
    let form = multipart::Form::file(
        &input.filename,
        &input.content_type,
        input.content.as_bytes(),
    )?;
    let made: Value = site.post_multipart(&format!("issue/{issue}/attachments"), &form)?;
    let attachments = made
        .as_array()
        .ok_or_else(|| Error::upstream("Jira's answer to an attachment is not a list"))?
        .iter()
        .map(|a| json!({ "id": a["id"], "filename": a["filename"], "size": a["size"] }))
        .collect();
    Ok(Attached {
        issue: input.issue,
        attachments,
    })
}

/// A string field of Jira's answer, or an error naming it.
fn string(value: &Value, field: &str) -> Result<String, Error> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::upstream(format!("Jira's answer has no `{field}`")))
}

impl Site {
    /// A text field in this deployment's form: ADF on v3, plain on v2.
    fn text(&self, text: &str) -> Value {
        match self.deployment {
            Deployment::Cloud => adf::document(text),
            Deployment::DataCenter => Value::String(text.to_owned()),
        }
    }
}
