//! HTTPS through the broker: the public roots by default, an operator's private
//! CA when granted, and credentials injected inside the TLS session.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{Site, grant, key_file};

const SECRET: &str = "tls-secret-93b1e0c4";

/// A private CA and an HTTPS server on 127.0.0.1 with a certificate it signed;
/// the server answers `hello` and keeps each request's head.
async fn private_https() -> (String, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();

    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).to_lowercase());
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (ca.pem(), addr, heads)
}

fn site(origin: &str, ca_file: Option<&str>) -> Site {
    let site = Site::new();
    let key = site.file("key", SECRET);
    let ca = ca_file.map(|pem| site.file("ca.pem", pem));
    let mut config = grant("hostile", origin, &key_file(&key));
    if let Some(ca) = ca {
        config.push_str(&format!("ca_file = {:?}\n", ca.display().to_string()));
    }
    site.hostile("hostile", |m| m).config(&config);
    site
}

#[tokio::test]
async fn a_granted_private_ca_is_trusted_and_the_credential_travels_inside_tls() {
    let (ca, addr, heads) = private_https().await;
    let origin = format!("https://{addr}");
    let site = site(&origin, Some(&ca));
    let plugin = site.load("hostile").await;
    let out = plugin
        .call("fetch", &json!({"url": format!("{origin}/hello")}))
        .await
        .result
        .unwrap();
    assert_eq!(
        (out["status"].clone(), out["body"].clone()),
        (json!(200), json!("hello"))
    );
    let heads = heads.lock().unwrap().clone();
    assert!(heads[0].starts_with("get /hello http/1.1"), "{heads:?}");
    assert!(
        heads[0].contains(&format!("x-apikey: {SECRET}")),
        "{heads:?}"
    );
}

#[tokio::test]
async fn without_the_ca_the_certificate_is_refused() {
    let (_, addr, heads) = private_https().await;
    let origin = format!("https://{addr}");
    let site = site(&origin, None);
    let plugin = site.load("hostile").await;
    let err = plugin
        .call("fetch", &json!({"url": format!("{origin}/hello")}))
        .await
        .result
        .unwrap_err();
    assert_eq!(err.code().as_str(), "upstream", "{err}");
    assert!(
        heads.lock().unwrap().is_empty(),
        "no request may be sent over an untrusted session"
    );
}

#[tokio::test]
async fn a_ca_file_without_certificates_is_a_load_error() {
    let site = site("https://127.0.0.1:9", Some("not a certificate\n"));
    let err = site
        .registry()
        .load("hostile")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("plugin `hostile`: ca_file ")
            && err.ends_with("ca.pem holds no PEM certificate"),
        "{err}"
    );
}
