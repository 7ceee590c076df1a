//! The outbound HTTP broker: every request a plugin makes passes here.
//!
//! Wired in as wasmtime-wasi-http's `send_request` hook, so plugins use the
//! standard `wasi:http/outgoing-handler` and any language's HTTP client works.
//! For each request the broker, in order:
//!
//! 1. matches the origin (`scheme://host:port`) against the plugin's allow-list:
//!    the manifest's `network.allow` rendered with its settings, plus the
//!    operator's `allow`;
//! 2. resolves the host itself and refuses loopback, private, link-local (cloud
//!    metadata) and other non-public addresses unless the operator listed that
//!    exact origin in `aerie.toml`; it then connects to the address it checked,
//!    so a second DNS answer cannot swap the target (rebinding);
//! 3. adds each credential whose `hosts` match the origin, as the manifest says
//!    (header, bearer, basic, query). The guest can neither read these nor set
//!    `Authorization`, `Cookie`, `Proxy-Authorization`, `X-Api-Key` or a
//!    credential's header itself: wasi:http refuses those as forbidden headers;
//! 4. caps the response body and records method, URL, status, bytes and time.
//!
//! A refusal sends nothing: the guest sees `HTTP-request-denied` and the host
//! reports a `denied` error naming the origin and the rule.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aerie_manifest::{Apply, Origin, OriginPattern};
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use crate::secrets::{Redactor, Secret};

/// Headers a guest may never set: they carry credentials, which are the host's.
const RESERVED_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-api-key",
];

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub use aerie_contract::RequestRecord;

/// A credential as the broker holds it.
#[derive(Debug, Clone)]
pub(crate) struct Credential {
    pub name: String,
    pub apply: Apply,
    pub hosts: Vec<OriginPattern>,
    pub secret: Secret,
}

/// What one plugin may reach, and with which credentials.
#[derive(Debug)]
pub(crate) struct NetworkPolicy {
    pub plugin: String,
    /// Manifest origins (rendered) and operator origins.
    pub allowed: Vec<OriginPattern>,
    /// Operator origins only: the ones that may resolve to non-public addresses.
    pub operator: Vec<OriginPattern>,
    pub credentials: Vec<Credential>,
    pub max_response_bytes: u64,
    /// Most requests one call may make.
    pub max_requests: usize,
    pub redactor: Redactor,
    /// TLS settings for HTTPS origins: the public roots plus the operator's
    /// `ca_file`. Built once per loaded plugin.
    pub tls: Arc<rustls::ClientConfig>,
}

/// The TLS client settings: the public web roots, plus `extra` authorities.
pub(crate) fn tls_config(
    extra: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    for cert in extra {
        roots.add(cert).map_err(|e| format!("ca_file: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

impl NetworkPolicy {
    fn is_reserved(&self, name: &HeaderName) -> bool {
        let name = name.as_str();
        RESERVED_HEADERS.contains(&name)
            || self
                .credentials
                .iter()
                .filter_map(|c| c.apply.header_name())
                .any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Checks the origin and its addresses; returns where to connect.
    async fn vet(&self, url: &url::Url) -> Result<(Origin, Vec<SocketAddr>), String> {
        let origin =
            Origin::from_url(url).ok_or_else(|| format!("`{url}` is not an http(s) URL"))?;
        if !self.allowed.iter().any(|p| p.matches(&origin)) {
            return Err(format!(
                "{origin} is not an allowed origin for plugin `{}` (allowed: {}; grant more with `allow` under [plugins.{}] in aerie.toml)",
                self.plugin,
                list(&self.allowed),
                self.plugin,
            ));
        }
        let addrs: Vec<SocketAddr> = match origin.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, origin.port)],
            Err(_) => tokio::net::lookup_host((origin.host.as_str(), origin.port))
                .await
                .map_err(|e| format!("cannot resolve {}: {e}", origin.host))?
                .collect(),
        };
        let operator_granted = self.operator.iter().any(|p| p.matches(&origin));
        if !operator_granted
            && let Some((addr, kind)) = addrs
                .iter()
                .find_map(|a| non_public(a.ip()).map(|k| (a, k)))
        {
            return Err(format!(
                "{origin} resolves to {} ({kind}); only an origin the operator lists under [plugins.{}] allow in aerie.toml may reach such an address",
                addr.ip(),
                self.plugin,
            ));
        }
        if addrs.is_empty() {
            return Err(format!("{} has no addresses", origin.host));
        }
        Ok((origin, addrs))
    }

    fn inject(&self, origin: &Origin, request: &mut http::Request<WasiBody>) -> Result<(), Error> {
        for cred in self
            .credentials
            .iter()
            .filter(|c| c.hosts.iter().any(|h| h.matches(origin)))
        {
            let secret = cred.secret.expose();
            let header = |name: &str, value: String| -> Result<(HeaderName, HeaderValue), Error> {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| Error::ConfigurationError)?;
                let mut value =
                    HeaderValue::from_str(&value).map_err(|_| Error::ConfigurationError)?;
                value.set_sensitive(true);
                Ok((name, value))
            };
            let (name, value) = match &cred.apply {
                Apply::Header(name) => header(name, secret.to_owned())?,
                Apply::Bearer => header("authorization", format!("Bearer {secret}"))?,
                Apply::Basic { username } => {
                    let pair = match username {
                        Some(user) => format!("{user}:{secret}"),
                        None => secret.to_owned(),
                    };
                    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                    header("authorization", format!("Basic {encoded}"))?
                }
                Apply::Query(param) => {
                    let uri = request.uri().clone();
                    let mut url = url::Url::parse(&uri.to_string())
                        .map_err(|_| Error::HttpRequestUriInvalid)?;
                    url.query_pairs_mut().append_pair(param, secret);
                    *request.uri_mut() = url
                        .as_str()
                        .parse()
                        .map_err(|_| Error::HttpRequestUriInvalid)?;
                    continue;
                }
            };
            tracing::debug!(plugin = %self.plugin, credential = %cred.name, %origin, "credential injected");
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

fn list(patterns: &[OriginPattern]) -> String {
    if patterns.is_empty() {
        return "none".to_owned();
    }
    patterns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names the kind of a non-public address, or `None` for a public one.
/// The IPv4 address an IPv6 one stands for, where it embeds one: mapped
/// (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`, deprecated but still routed
/// by some stacks), NAT64 (`64:ff9b::a.b.c.d`, `64:ff9b:1::/48`) and 6to4
/// (`2002:aabb:ccdd::`). Each is judged as that IPv4 address.
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let low = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Some(low(s[6], s[7])),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

pub(crate) fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local, where cloud metadata services live")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if v4.is_broadcast() || v4.is_multicast() {
                Some("broadcast or multicast")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared address space")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                return Some("loopback");
            }
            if let Some(v4) = embedded_ipv4(v6) {
                return non_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

/// What the broker saw during one call.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    entries: Vec<(RequestRecord, Arc<AtomicU64>)>,
    /// The last refusal, which becomes the call's error if the plugin fails.
    pub refusal: Option<String>,
}

impl Journal {
    pub fn records(&self) -> Vec<RequestRecord> {
        self.entries
            .iter()
            .map(|(record, bytes)| RequestRecord {
                bytes: bytes.load(Ordering::Relaxed),
                ..record.clone()
            })
            .collect()
    }
}

pub(crate) type SharedJournal = Arc<Mutex<Journal>>;

fn lock(journal: &SharedJournal) -> std::sync::MutexGuard<'_, Journal> {
    // A poisoned journal only means another thread panicked mid-push; the
    // records are still the best account we have.
    journal.lock().unwrap_or_else(|e| e.into_inner())
}

/// The per-call hooks object handed to wasmtime-wasi-http.
pub(crate) struct Broker {
    pub policy: Arc<NetworkPolicy>,
    pub journal: SharedJournal,
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for Broker {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        let policy = self.policy.clone();
        Arc::new(move |name| DEFAULT_FORBIDDEN_HEADERS.contains(name) || policy.is_reserved(name))
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        let policy = self.policy.clone();
        let journal = self.journal.clone();
        Box::new(async move { send(policy, journal, request, options).await })
    }
}

async fn send(
    policy: Arc<NetworkPolicy>,
    journal: SharedJournal,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let started = Instant::now();
    // Past the call's budget a request is refused; one record says so, and
    // the journal does not grow with every further attempt.
    {
        let mut journal = lock(&journal);
        if journal.entries.len() >= policy.max_requests {
            let reason = format!(
                "more than {} requests in one call (limits.max_requests)",
                policy.max_requests
            );
            if journal.entries.len() == policy.max_requests {
                journal.entries.push((
                    RequestRecord {
                        method: request.method().to_string(),
                        url: policy.redactor.redact(&request.uri().to_string()),
                        status: None,
                        bytes: 0,
                        ms: 0,
                        refused: Some(reason.clone()),
                    },
                    Arc::new(AtomicU64::new(0)),
                ));
            }
            journal.refusal = Some(reason);
            return Err(Error::HttpRequestDenied);
        }
    }
    let bytes = Arc::new(AtomicU64::new(0));
    let mut record = RequestRecord {
        method: request.method().to_string(),
        url: policy.redactor.redact(&request.uri().to_string()),
        status: None,
        bytes: 0,
        ms: 0,
        refused: None,
    };
    let finish = |record: RequestRecord, refusal: Option<String>| {
        let mut journal = lock(&journal);
        if let Some(reason) = &refusal {
            tracing::warn!(plugin = %policy.plugin, url = %record.url, "request refused: {reason}");
            journal.refusal = Some(reason.clone());
        }
        journal.entries.push((
            RequestRecord {
                refused: refusal,
                ..record
            },
            bytes.clone(),
        ));
    };

    let mut url = match url::Url::parse(&request.uri().to_string()) {
        Ok(url) => url,
        Err(e) => {
            finish(record, Some(format!("malformed URL: {e}")));
            return Err(Error::HttpRequestUriInvalid);
        }
    };
    // An upstream answering TRACE echoes the request, injected credentials
    // included, back to the plugin.
    if ["TRACE", "TRACK"]
        .iter()
        .any(|m| request.method().as_str().eq_ignore_ascii_case(m))
    {
        finish(
            record,
            Some(format!(
                "{} is refused: the upstream would echo the request, with the credentials the host injected, to the plugin",
                request.method()
            )),
        );
        return Err(Error::HttpRequestDenied);
    }
    // Credentials in a URL would travel in the Host header and be recorded;
    // credentials are the host's to inject.
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username("");
        let _ = url.set_password(None);
        record.url = policy.redactor.redact(url.as_str());
        finish(
            record,
            Some("a URL with credentials in it (user:password@host) is refused: bind a credential in aerie.toml instead".to_owned()),
        );
        return Err(Error::HttpRequestDenied);
    }
    let (origin, addrs) = match policy.vet(&url).await {
        Ok(vetted) => vetted,
        Err(reason) => {
            finish(record, Some(reason));
            return Err(Error::HttpRequestDenied);
        }
    };
    policy.inject(&origin, &mut request)?;

    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(CONNECT_TIMEOUT);
    let outcome = exchange(&origin, &addrs, request, connect_timeout, &policy.tls).await;
    record.ms = started.elapsed().as_millis() as u64;
    let (response, io) = match outcome {
        Ok(ok) => ok,
        Err(e) => {
            finish(record, None);
            return Err(e);
        }
    };
    record.status = Some(response.status().as_u16());

    let (parts, incoming) = response.into_parts();
    let cap = policy.max_response_bytes;
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&length| length > cap) {
        let reason =
            format!("the response from {origin} is {length} bytes, over the {cap}-byte cap");
        finish(record, Some(reason));
        return Err(Error::HttpResponseBodySize(Some(length)));
    }
    let body = Capped {
        inner: incoming,
        seen: bytes.clone(),
        cap,
        origin: origin.to_string(),
        journal: journal.clone(),
    };
    finish(record, None);
    Ok((http::Response::from_parts(parts, body.boxed_unsync()), io))
}

/// Connects to the first reachable vetted address, speaks TLS for https, and
/// sends the request over HTTP/1.1.
async fn exchange(
    origin: &Origin,
    addrs: &[SocketAddr],
    mut request: http::Request<WasiBody>,
    connect_timeout: Duration,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(http::Response<hyper::body::Incoming>, IoFuture), Error> {
    let mut last_error = None;
    let mut stream = None;
    for addr in addrs {
        match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = Some(Error::Connect(e)),
            Err(_) => last_error = Some(Error::ConnectionTimeout),
        }
    }
    let stream = match stream {
        Some(stream) => stream,
        None => return Err(last_error.unwrap_or(Error::ConnectionRefused)),
    };

    // Origin-form request target: the authority travels in the Host header.
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = target.parse().map_err(|_| Error::HttpRequestUriInvalid)?;

    if origin.scheme == "https" {
        let name = match origin.host.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(origin.host.clone())
                .map_err(Error::InvalidDnsNameError)?,
        };
        let tls = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, stream)
            .await
            .map_err(Error::Tls)?;
        handshake(tls, request).await
    } else {
        handshake(stream, request).await
    }
}

async fn handshake<S>(
    stream: S,
    request: http::Request<WasiBody>,
) -> Result<(http::Response<hyper::body::Incoming>, IoFuture), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream))
            .await
            .map_err(Error::from)?;
    // The connection must be driven while the response is awaited; the task
    // ends when the response body is dropped.
    let driver = tokio::spawn(conn);
    let response = sender.send_request(request).await.map_err(Error::from)?;
    let io: IoFuture = Box::new(async move {
        match driver.await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Ok(()),
        }
    });
    Ok((response, io))
}

/// A response body that counts what the plugin reads and stops at the cap.
struct Capped {
    inner: hyper::body::Incoming,
    seen: Arc<AtomicU64>,
    cap: u64,
    origin: String,
    journal: SharedJournal,
}

impl Body for Capped {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            let seen =
                self.seen.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
            if seen > self.cap {
                let reason = format!(
                    "the response from {} passed the {}-byte cap",
                    self.origin, self.cap
                );
                lock(&self.journal).refusal = Some(reason);
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(seen)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_non_public_addresses() {
        let cases = [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            (
                "169.254.169.254",
                Some("link-local, where cloud metadata services live"),
            ),
            ("100.64.0.1", Some("shared address space")),
            ("0.0.0.0", Some("unspecified")),
            ("::1", Some("loopback")),
            ("fd00:ec2::254", Some("private (unique local)")),
            ("fe80::1", Some("link-local")),
            ("::ffff:127.0.0.1", Some("loopback")),
            // IPv4 embedded in IPv6 is judged as the IPv4 address.
            ("::127.0.0.1", Some("loopback")),
            ("::10.0.0.1", Some("private")),
            (
                "64:ff9b::169.254.169.254",
                Some("link-local, where cloud metadata services live"),
            ),
            ("64:ff9b:1::a00:1", Some("private")),
            ("2002:c0a8:101::1", Some("private")),
            ("2002:808:808::1", None),
            ("64:ff9b::8.8.8.8", None),
            ("::", Some("unspecified")),
            ("8.8.8.8", None),
            ("2606:4700::1111", None),
        ];
        for (ip, expected) in cases {
            assert_eq!(non_public(ip.parse().unwrap()), expected, "{ip}");
        }
    }
}
