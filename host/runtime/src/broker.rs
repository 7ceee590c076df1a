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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aerie_manifest::{Apply, Origin, OriginPattern};
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use crate::budget::{Budget, Charge, header_bytes};
use crate::secrets::{Redactor, Secret};

mod address;
mod response;

pub(crate) use address::non_public;
use response::{Capped, Scrubbed, scrub_headers};

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
            match cred.wire() {
                Wire::Header(name, value) => {
                    let name = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| Error::ConfigurationError)?;
                    let mut value =
                        HeaderValue::from_str(&value).map_err(|_| Error::ConfigurationError)?;
                    value.set_sensitive(true);
                    request.headers_mut().insert(name, value);
                }
                Wire::Query(param) => {
                    let mut url = url::Url::parse(&request.uri().to_string())
                        .map_err(|_| Error::HttpRequestUriInvalid)?;
                    url.query_pairs_mut()
                        .append_pair(param, cred.secret.expose());
                    *request.uri_mut() = url
                        .as_str()
                        .parse()
                        .map_err(|_| Error::HttpRequestUriInvalid)?;
                }
            }
            tracing::debug!(plugin = %self.plugin, credential = %cred.name, %origin, "credential injected");
        }
        Ok(())
    }
}

/// How a credential travels.
enum Wire<'c> {
    /// A header and its whole value (`Bearer …`, `Basic …`, or the secret).
    Header(&'c str, String),
    /// A query parameter whose value is the secret.
    Query(&'c str),
}

impl Credential {
    fn wire(&self) -> Wire<'_> {
        let secret = self.secret.expose();
        match &self.apply {
            Apply::Header(name) => Wire::Header(name, secret.to_owned()),
            Apply::Bearer => Wire::Header("authorization", format!("Bearer {secret}")),
            Apply::Basic { username } => {
                let pair = match username {
                    Some(user) => format!("{user}:{secret}"),
                    None => secret.to_owned(),
                };
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                Wire::Header("authorization", format!("Basic {encoded}"))
            }
            Apply::Query(param) => Wire::Query(param),
        }
    }

    /// The values a reflecting upstream could hand back, each scrubbed in
    /// every form: the secret, the `user:secret` pair a Basic credential
    /// encodes, and the value as sent, header or `param=value` (so
    /// `base64("Basic …")` or a base64 of the request URL, an encoding of an
    /// encoding, is caught too).
    pub fn protected(&self) -> Vec<Secret> {
        let mut values = vec![self.secret.clone()];
        if let Apply::Basic {
            username: Some(user),
        } = &self.apply
        {
            values.push(self.secret.prefixed(&format!("{user}:")));
        }
        values.push(Secret::derived(match self.wire() {
            Wire::Header(_, value) => value,
            Wire::Query(param) => form_urlencoded::Serializer::new(String::new())
                .append_pair(param, self.secret.expose())
                .finish(),
        }));
        values
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
    pub budget: Arc<Budget>,
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
        let budget = self.budget.clone();
        Box::new(async move { send(policy, journal, budget, request, options).await })
    }

    // One buffered write per outgoing body, of at most this size: what the
    // budget charges when the guest takes a body.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        crate::charged::OUTGOING_CHUNK
    }
}

async fn send(
    policy: Arc<NetworkPolicy>,
    journal: SharedJournal,
    budget: Arc<Budget>,
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
    let scrubbing = policy.redactor.patterns().is_some();
    if scrubbing {
        // The scrubber reads the bytes as sent: a compressed answer would
        // carry a reflected secret past it for the guest to inflate.
        request.headers_mut().insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }

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
    let coding = response
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|c| !c.is_empty() && c != "identity");
    if let Some(coding) = coding.filter(|_| scrubbing) {
        let reason = format!(
            "the response from {origin} is `{coding}`-encoded, though identity was asked for: a plugin holding credentials only gets answers the host can scrub"
        );
        finish(record, Some(reason));
        return Err(Error::HttpResponseContentCoding(Some(coding)));
    }

    let (mut parts, incoming) = response.into_parts();
    if let Err(exceeded) = budget.charge(Charge::ResponseHeaders, header_bytes(&parts.headers)) {
        finish(record, Some(exceeded.to_string()));
        return Err(Error::HttpResponseHeaderSectionSize(None));
    }
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
        budget,
        held: 0,
    };
    finish(record, None);
    // The guest never holds a secret, even one an upstream reflects.
    let body = match policy.redactor.patterns() {
        None => body.boxed_unsync(),
        Some(patterns) => {
            scrub_headers(patterns, &mut parts.headers);
            // A scrubbed body is not the length the upstream declared.
            parts.headers.remove(http::header::CONTENT_LENGTH);
            Scrubbed::new(body, patterns.clone()).boxed_unsync()
        }
    };
    Ok((http::Response::from_parts(parts, body), io))
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
