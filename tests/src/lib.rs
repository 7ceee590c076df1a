//! Stand-ins for the outside services aerie's plugins talk to, on 127.0.0.1.
//!
//! Each follows its vendor's documented API shapes (paths, status codes, error
//! bodies) closely enough for the plugin to be exercised for real, and records
//! what it received so tests can check what crossed the wire.

pub mod cape;
pub mod elastic;
pub mod enrichment;
pub mod jira;
pub mod misc;
pub mod panos;
pub mod postgres;
pub mod rdap;
pub mod safebrowsing;
pub mod shodan;
pub mod snipeit;
pub mod virustotal;

use std::net::SocketAddr;

/// Serves `router` on an ephemeral 127.0.0.1 port until the task is dropped.
pub async fn serve(
    router: axum::Router,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        // The server runs until the test drops it; an accept error ends it.
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, task))
}
