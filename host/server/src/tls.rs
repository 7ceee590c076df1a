//! HTTPS for sites without a TLS proxy in front: rustls over hyper's HTTP/1
//! connection, serving the same router as plain HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aerie_manifest::{TlsConfig, TlsVersion};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::version::{TLS12, TLS13};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// A handshake not finished by then is dropped: a client that stalls it
/// holds one task, never the listener.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The acceptor for `[server] tls`: the PEM certificate chain and key, and
/// the oldest protocol version taken. Every error names the file or the
/// setting.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, String> {
    let certs = CertificateDer::pem_file_iter(&config.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("[server] tls cert {}: {e}", config.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "[server] tls cert {}: no PEM certificate in it",
            config.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|e| format!("[server] tls key {}: {e}", config.key.display()))?;
    let versions: &[_] = match config.min_version {
        TlsVersion::Tls12 => &[&TLS13, &TLS12],
        TlsVersion::Tls13 => &[&TLS13],
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("[server] tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("[server] tls: the key and certificate do not make a pair: {e}"))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Serves `app` over TLS on `listener` until `shutdown` completes; then
/// stops accepting and gives the requests in flight up to `grace`.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, mostly: wait for some to close
                    // instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (acceptor, app, watcher) = (acceptor.clone(), app.clone(), graceful.watcher());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
                    app.clone().oneshot(request)
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended");
            }
        });
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTPS requests still open after the grace period were dropped");
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn files(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&c, cert.cert.pem()).unwrap();
        std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = files(&dir);
        let config = |cert: &PathBuf, key: &PathBuf| TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
            min_version: TlsVersion::Tls13,
        };
        assert!(acceptor(&config(&cert, &key)).is_ok());
        let missing = dir.path().join("missing.pem");
        let err = acceptor(&config(&missing, &key)).err().unwrap();
        assert!(
            err.starts_with("[server] tls cert ") && err.contains("missing.pem"),
            "{err}"
        );
        // A key where the certificate goes: no certificate in it.
        let err = acceptor(&config(&key, &key)).err().unwrap();
        assert!(err.ends_with("no PEM certificate in it"), "{err}");
        let err = acceptor(&config(&cert, &cert)).err().unwrap();
        assert!(err.starts_with("[server] tls key "), "{err}");
        // Another pair's key.
        let other = tempfile::tempdir().unwrap();
        let (_, other_key) = files(&other);
        let err = acceptor(&config(&cert, &other_key)).err().unwrap();
        assert!(err.contains("do not make a pair"), "{err}");
    }
}
