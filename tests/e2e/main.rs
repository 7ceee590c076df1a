//! aerie's end-to-end tests: real components in the real runtime, real HTTP
//! stand-ins on 127.0.0.1, and the `aerie` binary as a user runs it.
//!
//! The plugins are built for wasm32-wasip2 by `cargo xtask test` before this
//! binary runs (see `harness::wasm`).

mod api;
mod approvals;
mod audit;
mod broker;
mod budget;
mod bundles;
mod cases;
mod cases_api;
mod checkpoints;
mod cli;
mod contract;
mod enrichment;
mod fasttext;
mod folding;
mod harness;
mod https;
mod instances;
mod intel;
mod jira;
mod logs;
mod metrics;
mod playbook;
mod postgres;
mod queue;
mod recategorise;
mod reflect;
mod resume;
mod sandbox;
mod schedules;
mod secrets;
mod served;
mod tls;
mod virustotal;
mod webhooks;
