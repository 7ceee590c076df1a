//! `aerie serve` over HTTPS (`[server] tls`, a PEM pair): TLS 1.3 taken, TLS
//! 1.2 refused when `min_version = "1.3"`, and the same router behind it.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use rustls::pki_types::ServerName;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::harness::Site;
use crate::served::Served;

async fn connect(
    addr: SocketAddr,
    roots: &RootCertStore,
    versions: &[&'static SupportedProtocolVersion],
) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

#[tokio::test]
async fn https_takes_tls13_and_refuses_tls12_below_the_minimum() {
    let site = Site::new();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    site.file("cert.pem", &pair.cert.pem());
    site.file("key.pem", &pair.signing_key.serialize_pem());
    site.config(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = { cert = \"cert.pem\", key = \"key.pem\", min_version = \"1.3\" }\n",
    );
    let served = Served::start(&site, &[]);
    let mut roots = RootCertStore::empty();
    roots.add(pair.cert.der().clone()).unwrap();

    let tls = connect(served.addr, &roots, &[&TLS13]).await.unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            hyper::Request::get("/readyz")
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let ready: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(ready["store"], "ok", "{ready}");

    // A client that speaks TLS 1.2 at most is refused in the handshake.
    let err = connect(served.addr, &roots, &[&TLS12]).await.unwrap_err();
    assert!(
        err.to_string().contains("ProtocolVersion") || err.to_string().contains("protocol version"),
        "{err}"
    );
    // Plain HTTP to the HTTPS port starts nothing and does not stop it.
    let mut plain = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut answer).await;
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let again = connect(served.addr, &roots, &[&TLS13]).await;
    assert!(again.is_ok(), "{again:?}");

    let (code, stderr) = served.terminate();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_tls_file_that_cannot_be_read_stops_the_start_with_its_name() {
    let site = Site::new();
    site.config(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = { cert = \"nowhere.pem\", key = \"key.pem\" }\n",
    );
    let out = site.aerie().arg("serve").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[server] tls cert nowhere.pem"), "{stderr}");
}
