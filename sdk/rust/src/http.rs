//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Every request passes the host's broker: an origin the plugin was not granted is
//! refused with a `denied` error, and credentials are added by the host after the
//! request leaves the plugin. Setting `Authorization` or `X-Api-Key` yourself is
//! refused for the same reason.
//!
//! Any other wasi:http client (`waki`, `wstd`, ...) works too; this one exists so a
//! lookup plugin needs no further dependency.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode as WireError, Fields, HeaderError, IncomingBody, Method, OutgoingBody,
    OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::error::Error;

/// A request being built; send it with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// `text` as one URL path segment or query value: every byte but RFC 3986's
/// unreserved characters percent-encoded, so a value can neither end its
/// segment (`/`, `?`, `#`) nor add a parameter (`&`, `=`).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn get(url: &str) -> Request {
    Request::new(Method::Get, url)
}

pub fn post(url: &str) -> Request {
    Request::new(Method::Post, url)
}

/// A received response with its whole body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: Method, url: &str) -> Self {
        Request {
            method,
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json<T: Serialize>(mut self, body: &T) -> Result<Self, Error> {
        self.body = serde_json::to_vec(body)
            .map_err(|e| Error::internal(format!("request body is not JSON: {e}")))?;
        Ok(self.header("content-type", "application/json"))
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, Error> {
        let url = Url::parse(&self.url)?;
        let headers = Fields::new();
        for (name, value) in &self.headers {
            headers
                .append(name, value.as_bytes())
                .map_err(|e| header_error(name, e))?;
        }
        let request = OutgoingRequest::new(headers);
        let invalid = |what: &str| Error::invalid_input(format!("{what} of `{}`", self.url));
        request
            .set_method(&self.method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&url.scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(url.authority))
            .map_err(|()| invalid("host"))?;
        request
            .set_path_with_query(Some(url.path_and_query))
            .map_err(|()| invalid("path"))?;

        let outgoing = request
            .body()
            .map_err(|()| Error::internal("request body taken twice"))?;
        let pending = outgoing_handler::handle(request, None).map_err(wire_error)?;
        // A server may answer before it has read the body (a 429 or a 401
        // sent at once) and close: its answer is what the caller needs, so a
        // body that could not be sent is reported only when none came.
        let sent = write_body(outgoing, &self.body);

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(sent.err().unwrap_or_else(|| wire_error(code))),
            Some(Err(())) | None => return Err(Error::internal("response polled twice")),
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| Error::internal("response body taken twice"))?;
        let body = read_body(&incoming)?;
        drop(incoming);
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), Error> {
    if !body.is_empty() {
        let stream = outgoing
            .write()
            .map_err(|()| Error::internal("request body stream"))?;
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| {
                Error::upstream(format!("sending the request body: {}", stream_error(e)))
            })?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(wire_error)
}

fn read_body(incoming: &IncomingBody) -> Result<Vec<u8>, Error> {
    let stream = incoming
        .stream()
        .map_err(|()| Error::internal("response stream taken twice"))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(body),
            Err(e) => {
                return Err(Error::upstream(format!(
                    "reading the response: {}",
                    stream_error(e)
                )));
            }
        }
    }
}

impl Response {
    /// The header's value, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> Result<String, Error> {
        String::from_utf8(self.body.clone())
            .map_err(|_| Error::upstream("response is not UTF-8 text"))
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::upstream(format!("unexpected response (status {}): {e}", self.status))
        })
    }

    /// Maps the common failure statuses to the matching error codes: 401/403
    /// `unauthorized`, 404 `not-found`, 429 `rate-limited` (retryable), 5xx
    /// `upstream` (retryable), other 4xx `upstream`.
    pub fn error_for_status(self) -> Result<Response, Error> {
        let status = self.status;
        let message = || format!("upstream answered {status}");
        match status {
            200..=399 => Ok(self),
            401 | 403 => Err(Error::unauthorized(message())),
            404 => Err(Error::not_found(message())),
            429 => Err(Error::rate_limited(message())),
            500..=599 => Err(Error::upstream(message()).retryable(true)),
            _ => Err(Error::upstream(message())),
        }
    }
}

fn header_error(name: &str, e: HeaderError) -> Error {
    match e {
        HeaderError::Forbidden => Error::denied(format!(
            "header `{name}` is reserved: the host sets credentials, plugins cannot"
        )),
        HeaderError::InvalidSyntax => Error::invalid_input(format!("header `{name}` is malformed")),
        HeaderError::Immutable => Error::internal(format!("header `{name}` is immutable")),
    }
}

fn wire_error(code: WireError) -> Error {
    match code {
        WireError::HttpRequestDenied => {
            Error::denied("the host refused this request (see the run's request log for the rule)")
        }
        WireError::ConnectionTimeout
        | WireError::ConnectionReadTimeout
        | WireError::HttpResponseTimeout => Error::timeout(format!("{code:?}")),
        WireError::HttpResponseBodySize(_) => {
            Error::upstream("the response exceeded the host's size cap")
        }
        WireError::DnsError(_) | WireError::ConnectionRefused | WireError::ConnectionTerminated => {
            Error::upstream(format!("{code:?}")).retryable(true)
        }
        other => Error::upstream(format!("{other:?}")),
    }
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "closed".to_owned(),
        StreamError::LastOperationFailed(err) => err.to_debug_string(),
    }
}

/// Just enough URL parsing to fill a wasi:http request: scheme, authority and
/// the rest. The host parses again, strictly, before anything is sent.
struct Url<'a> {
    scheme: Scheme,
    authority: &'a str,
    path_and_query: &'a str,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Result<Url<'a>, Error> {
        let bad = || Error::invalid_input(format!("`{url}` is not an absolute http(s) URL"));
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(bad()),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(split);
        if authority.is_empty() {
            return Err(bad());
        }
        let path_and_query = if path_and_query.is_empty() {
            "/"
        } else {
            path_and_query
        };
        Ok(Url {
            scheme,
            authority,
            path_and_query,
        })
    }
}
