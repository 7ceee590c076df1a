//! `GET /api/v1/openapi.json`: the API described from the handlers' own
//! annotations (utoipa), so the document changes with the code.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::{api, health, hooks};

/// What every refusal answers.
#[derive(ToSchema)]
#[allow(dead_code)] // a description for the document; errors are built by ApiError
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// A stable word: `unauthorized`, `not_found`, `bad_request`, ...
    code: String,
    /// What is wrong, for a person.
    message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "aerie",
        description = "The aerie server: webhooks that queue runs, and the API the CLI's store commands and the web page use. API calls take `Authorization: Bearer TOKEN` from `aerie token create --as USER` and act as that user."
    ),
    paths(
        hooks::receive,
        health::healthz,
        health::readyz,
        health::metrics,
        api::whoami,
        api::runs,
        api::run,
        api::audit::run,
        api::audit::requests,
        api::audit::verify,
        api::playbooks::list,
        api::playbooks::start,
        api::playbooks::validate,
        api::triggers::list,
        api::plugins::list,
        api::plugins::show,
        api::approvals::pending,
        api::approvals::approve,
        api::approvals::reject,
        api::cases::list,
        api::cases::create,
        api::cases::find,
        api::cases::show,
        api::cases::update,
        api::cases::comment,
        api::cases::add_task,
        api::cases::mark_task,
        api::cases::link,
        api::cases::close,
        api::cases::similar,
        api::cases::ignored,
        api::cases::ignore,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        // What app() routes (openapi.json itself aside).
        for (method, path) in [
            ("post", "/hooks/{name}"),
            ("get", "/healthz"),
            ("get", "/readyz"),
            ("get", "/metrics"),
            ("get", "/api/v1/whoami"),
            ("get", "/api/v1/runs"),
            ("get", "/api/v1/runs/{id}"),
            ("get", "/api/v1/runs/{id}/audit"),
            ("get", "/api/v1/runs/{id}/requests"),
            ("get", "/api/v1/audit/verify"),
            ("get", "/api/v1/playbooks"),
            ("post", "/api/v1/playbooks/{name}/runs"),
            ("post", "/api/v1/playbooks/validate"),
            ("get", "/api/v1/triggers"),
            ("get", "/api/v1/plugins"),
            ("get", "/api/v1/plugins/{name}"),
            ("get", "/api/v1/approvals"),
            ("post", "/api/v1/approvals/{id}/approve"),
            ("post", "/api/v1/approvals/{id}/reject"),
            ("get", "/api/v1/cases"),
            ("post", "/api/v1/cases"),
            ("post", "/api/v1/cases/find"),
            ("get", "/api/v1/cases/{id}"),
            ("patch", "/api/v1/cases/{id}"),
            ("post", "/api/v1/cases/{id}/comments"),
            ("post", "/api/v1/cases/{id}/tasks"),
            ("patch", "/api/v1/cases/{id}/tasks/{task}"),
            ("post", "/api/v1/cases/{id}/links"),
            ("post", "/api/v1/cases/{id}/close"),
            ("get", "/api/v1/cases/{id}/similar"),
            ("get", "/api/v1/observables/ignored"),
            ("post", "/api/v1/observables/ignored"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path}"
            );
        }
        assert_eq!(paths.len(), 29);
        let runs = &paths["/api/v1/runs"]["get"];
        let params: Vec<&str> = runs["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(params, ["limit", "status", "playbook", "before"]);
        assert_eq!(runs["security"], serde_json::json!([{ "bearer": [] }]));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    }
}
