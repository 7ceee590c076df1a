//! What the guest receives of a response: a body counted against the cap, and
//! headers and body with every injected secret, in every form, scrubbed.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use http_body::{Body, Frame};
use wasmtime_wasi_http::Error;

use super::{SharedJournal, lock};
use crate::budget::{Budget, Charge};
use crate::scrub::{Patterns, StreamScrubber};

/// A response body that counts what the plugin reads and stops at the cap.
pub(super) struct Capped {
    pub inner: hyper::body::Incoming,
    pub seen: Arc<AtomicU64>,
    pub cap: u64,
    pub origin: String,
    pub journal: SharedJournal,
    /// Each chunk is charged while the guest has not read it: the next poll
    /// means the one before was taken.
    pub budget: Arc<Budget>,
    pub held: usize,
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
        let held = std::mem::take(&mut self.held);
        self.budget.release(held);
        if let Some(data) = frame.data_ref() {
            if let Err(exceeded) = self.budget.charge(Charge::ResponseBodies, data.len()) {
                lock(&self.journal).refusal = Some(exceeded.to_string());
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(None))));
            }
            self.held = data.len();
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

/// Replaces every form of a secret in `headers`, names and values. A header
/// whose name holds one is dropped: `[REDACTED]` is no header name.
pub(super) fn scrub_headers(patterns: &Patterns, headers: &mut HeaderMap) {
    let reflected = headers.iter().any(|(name, value)| {
        patterns.is_match(name.as_ref()) || patterns.is_match(value.as_bytes())
    });
    if !reflected {
        return;
    }
    let mut scrubbed = HeaderMap::with_capacity(headers.len());
    let mut name: Option<HeaderName> = None;
    for (key, value) in std::mem::take(headers) {
        // `into_iter` names a header once, before the first of its values.
        if key.is_some() {
            name = key;
        }
        let Some(name) = name.as_ref().filter(|n| !patterns.is_match(n.as_ref())) else {
            continue;
        };
        let value = match patterns.scrub(value.as_bytes()) {
            std::borrow::Cow::Borrowed(_) => value,
            // The marker is printable ASCII, so the value stays valid.
            std::borrow::Cow::Owned(bytes) => match HeaderValue::from_bytes(&bytes) {
                Ok(value) => value,
                Err(_) => continue,
            },
        };
        scrubbed.append(name.clone(), value);
    }
    *headers = scrubbed;
}

/// A body passed through a [`StreamScrubber`]; trailers are scrubbed as
/// headers are, after the held-back tail of the data.
pub(super) struct Scrubbed<B> {
    pub inner: B,
    pub scrubber: StreamScrubber,
    /// Trailers that arrived while the tail was still held back.
    pub trailers: Option<HeaderMap>,
    pub done: bool,
}

impl<B> Scrubbed<B> {
    pub fn new(inner: B, patterns: Arc<Patterns>) -> Self {
        Scrubbed {
            inner,
            scrubber: StreamScrubber::new(patterns),
            trailers: None,
            done: false,
        }
    }
}

impl<B> Body for Scrubbed<B>
where
    B: Body<Data = Bytes, Error = Error> + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if let Some(trailers) = this.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.done = true;
                    let tail = this.scrubber.finish();
                    return Poll::Ready((!tail.is_empty()).then(|| Ok(Frame::data(tail))));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) => {
                    let passed = this.scrubber.push(data);
                    // A chunk wholly held back yields nothing yet; an empty
                    // frame would read as the end to some guests.
                    if !passed.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(passed))));
                    }
                }
                Err(frame) => {
                    let Ok(mut trailers) = frame.into_trailers() else {
                        continue;
                    };
                    scrub_headers(this.scrubber.patterns(), &mut trailers);
                    this.done = true;
                    let tail = this.scrubber.finish();
                    if tail.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    this.trailers = Some(trailers);
                    return Poll::Ready(Some(Ok(Frame::data(tail))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const SECRET: &str = "k3y-0f-the-h0st";

    #[test]
    fn headers_lose_every_form_and_a_name_that_holds_one() {
        let patterns = Patterns::new([SECRET]).unwrap();
        let mut headers = HeaderMap::new();
        headers.append("x-echo", HeaderValue::from_static("k3y-0f-the-h0st"));
        headers.append("x-echo", HeaderValue::from_static("plain"));
        headers.append("k3y-0f-the-h0st", HeaderValue::from_static("1"));
        headers.append(
            "location",
            HeaderValue::from_str(&format!("/next?key={}", hex::encode(SECRET))).unwrap(),
        );
        scrub_headers(&patterns, &mut headers);
        let all: Vec<_> = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        assert_eq!(
            all,
            [
                "x-echo: [REDACTED]",
                "x-echo: plain",
                "location: /next?key=[REDACTED]"
            ]
        );
    }

    #[tokio::test]
    async fn a_body_split_inside_a_secret_and_its_trailers_are_scrubbed() {
        let patterns = Arc::new(Patterns::new([SECRET]).unwrap());
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sig", HeaderValue::from_static("k3y-0f-the-h0st"));
        let frames = vec![
            Frame::data(Bytes::from_static(b"echo: k3y-0f")),
            Frame::data(Bytes::from_static(b"-the-h0st!")),
            Frame::trailers(trailers),
        ];
        let body = Scrubbed::new(Frames(frames.into_iter()), patterns);
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap();
        assert_eq!(trailers["x-sig"], "[REDACTED]");
        assert_eq!(&collected.to_bytes()[..], b"echo: [REDACTED]!");
    }

    /// A body that yields the given frames.
    struct Frames(std::vec::IntoIter<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
            Poll::Ready(self.0.next().map(Ok))
        }
    }
}
