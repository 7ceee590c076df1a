//! Finding secrets in bytes, in the forms they travel in.
//!
//! An upstream that reflects a request (an echo endpoint, an API that returns
//! the request URL in a `links.self` field, a debug page listing the headers)
//! hands back what the broker injected, often re-encoded: percent-encoded in a
//! URL, JSON-escaped, base64 inside a `Basic` header, hex in a debug dump. The
//! [`Patterns`] of a set of values are each value in each of those forms; the
//! broker replaces every occurrence with [`REDACTED`] in a response's headers
//! and body before the guest sees them, and the [`crate::Redactor`] does the
//! same to everything the host prints or stores.
//!
//! Base64 is matched at any alignment: the secret inside `base64("svc:" +
//! secret)` does not start on a 3-byte boundary, so for each of the three
//! offsets the pattern is the run of base64 characters that depend on the
//! secret's bytes alone (the one or two characters at each edge, which mix in a
//! neighbour's bits, stay; they carry at most 4 bits of the secret each).

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::{Bytes, BytesMut};

/// What replaces a secret value wherever it would have appeared.
pub const REDACTED: &str = "[REDACTED]";

/// Shortest value scrubbed: replacing every `a` in a text because a test key
/// is `a` would make the text unreadable and protect nothing.
pub(crate) const MIN_VALUE_LEN: usize = 4;

/// Shortest encoded form scrubbed, for the same reason: the inner base64 of a
/// four-byte value is four characters, which ordinary text is full of.
const MIN_FORM_LEN: usize = 6;

/// Every form of a set of values, in one automaton.
#[derive(Debug)]
pub(crate) struct Patterns {
    matcher: AhoCorasick,
    /// The longest pattern's length: a streamed body holds back one byte less,
    /// so a form split across two chunks is still seen whole.
    longest: usize,
}

impl Patterns {
    /// The patterns of `values`, or `None` when there is nothing to look for
    /// (no values, or all too short).
    pub(crate) fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Patterns> {
        let mut forms: Vec<Vec<u8>> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_VALUE_LEN)
            .flat_map(forms)
            .collect();
        forms.sort();
        forms.dedup();
        if forms.is_empty() {
            return None;
        }
        let longest = forms.iter().map(Vec::len).max().unwrap_or(0);
        // Leftmost-longest: where a value's full base64 and its inner run both
        // match, the whole encoding goes.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&forms)
            .ok()?;
        Some(Patterns { matcher, longest })
    }

    pub(crate) fn is_match(&self, haystack: &[u8]) -> bool {
        self.matcher.is_match(haystack)
    }

    /// `haystack` with every match replaced; borrowed when nothing matched.
    pub(crate) fn scrub<'h>(&self, haystack: &'h [u8]) -> Cow<'h, [u8]> {
        let mut matches = self.matcher.find_iter(haystack).peekable();
        if matches.peek().is_none() {
            return Cow::Borrowed(haystack);
        }
        let mut out = Vec::with_capacity(haystack.len());
        let mut at = 0;
        for m in matches {
            out.extend_from_slice(&haystack[at..m.start()]);
            out.extend_from_slice(REDACTED.as_bytes());
            at = m.end();
        }
        out.extend_from_slice(&haystack[at..]);
        Cow::Owned(out)
    }

    /// `text` with every match replaced. Every form is valid UTF-8, so a match
    /// in valid UTF-8 starts and ends on character boundaries.
    pub(crate) fn scrub_str<'h>(&self, text: &'h str) -> Cow<'h, str> {
        match self.scrub(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(bytes) => Cow::Owned(
                String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }
}

/// The forms `value` is looked for in.
fn forms(value: &str) -> Vec<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut forms = vec![bytes.to_vec()];
    let mut derived = Vec::new();

    // URL: as the broker writes a query credential (form encoding) and as
    // strict percent-encoding writes it, with either case of hex digits.
    let form: String = form_urlencoded::byte_serialize(bytes).collect();
    let strict =
        percent_encoding::percent_encode(bytes, percent_encoding::NON_ALPHANUMERIC).to_string();
    for encoded in [form, strict] {
        derived.push(lowercase_escapes(&encoded));
        derived.push(encoded);
    }

    // JSON strings, and the `\/` some encoders write for `/`.
    if let Ok(quoted) = serde_json::to_string(value) {
        let escaped = &quoted[1..quoted.len() - 1];
        derived.push(escaped.replace('/', "\\/"));
        derived.push(escaped.to_owned());
    }

    // Hex, both cases.
    derived.push(hex::encode(bytes));
    derived.push(hex::encode_upper(bytes));

    // Base64 and base64url: the whole encoding, padded and not, and the inner
    // run at each of the three alignments.
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        derived.push(engine.encode(bytes));
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3 {
            derived.push(inner_base64(engine, bytes, offset));
        }
    }

    forms.extend(
        derived
            .into_iter()
            .filter(|f| f.len() >= MIN_FORM_LEN)
            .map(String::into_bytes),
    );
    forms
}

/// The base64 characters of `bytes` preceded by `offset` other bytes that do
/// not depend on those other bytes, nor on any that follow.
fn inner_base64(engine: &impl base64::Engine, bytes: &[u8], offset: usize) -> String {
    let mut shifted = vec![0u8; offset];
    shifted.extend_from_slice(bytes);
    let encoded = engine.encode(&shifted);
    // Character i carries bits 6i..6i+6: keep those wholly inside the value.
    let first = (8 * offset).div_ceil(6);
    let end = (8 * (offset + bytes.len())) / 6;
    encoded.get(first..end).unwrap_or_default().to_owned()
}

/// `%2F` as `%2f`: both are the same byte to a URL parser.
fn lowercase_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
        out.push_str(&escape.to_ascii_lowercase());
        rest = &rest[at + escape.len()..];
    }
    out.push_str(rest);
    out
}

/// Scrubs a body that arrives in chunks: each chunk is scanned together with
/// the tail of the one before, and that tail (one byte shorter than the
/// longest pattern) is held back until the next chunk or the end.
#[derive(Debug)]
pub(crate) struct StreamScrubber {
    patterns: Arc<Patterns>,
    carry: BytesMut,
}

impl StreamScrubber {
    pub(crate) fn new(patterns: Arc<Patterns>) -> Self {
        StreamScrubber {
            patterns,
            carry: BytesMut::new(),
        }
    }

    /// What can be passed on of everything seen so far.
    pub(crate) fn push(&mut self, chunk: Bytes) -> Bytes {
        let buffer = if self.carry.is_empty() {
            chunk
        } else {
            self.carry.extend_from_slice(&chunk);
            std::mem::take(&mut self.carry).freeze()
        };
        // A match starting before `safe` lies wholly in `buffer`, whatever
        // comes next; one starting later might be the prefix of a longer one.
        let safe = buffer.len().saturating_sub(self.patterns.longest - 1);
        let mut out: Option<BytesMut> = None;
        let mut at = 0;
        for m in self.patterns.matcher.find_iter(&buffer[..]) {
            if m.start() >= safe {
                break;
            }
            let out = out.get_or_insert_with(|| BytesMut::with_capacity(buffer.len()));
            out.extend_from_slice(&buffer[at..m.start()]);
            out.extend_from_slice(REDACTED.as_bytes());
            at = m.end();
        }
        let passed = safe.max(at);
        self.carry.extend_from_slice(&buffer[passed..]);
        match out {
            None => buffer.slice(..passed),
            Some(mut out) => {
                out.extend_from_slice(&buffer[at..passed]);
                out.freeze()
            }
        }
    }

    pub(crate) fn patterns(&self) -> &Patterns {
        &self.patterns
    }

    /// The held-back tail, scrubbed: the body has ended.
    pub(crate) fn finish(&mut self) -> Bytes {
        let tail = std::mem::take(&mut self.carry).freeze();
        match self.patterns.scrub(&tail) {
            Cow::Borrowed(_) => tail,
            Cow::Owned(scrubbed) => Bytes::from(scrubbed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "vt-secret/4f9a+1c77e2";

    fn patterns() -> Arc<Patterns> {
        Arc::new(Patterns::new([SECRET, "svc:vt-secret/4f9a+1c77e2"]).unwrap())
    }

    fn scrubbed(text: &str) -> String {
        patterns().scrub_str(text).into_owned()
    }

    #[test]
    fn every_form_of_a_secret_is_replaced() {
        let forms = [
            SECRET.to_owned(),
            form_urlencoded::byte_serialize(SECRET.as_bytes()).collect(),
            "vt-secret%2f4f9a%2b1c77e2".to_owned(),
            SECRET.replace('/', "\\/"),
            hex::encode(SECRET),
            hex::encode_upper(SECRET),
            STANDARD.encode(SECRET),
            URL_SAFE_NO_PAD.encode(SECRET),
        ];
        for form in &forms {
            assert_eq!(scrubbed(&format!("a {form} b")), "a [REDACTED] b", "{form}");
        }
        // A form we do not know stays: the guarantee names its encodings.
        let reversed: String = SECRET.chars().rev().collect();
        assert_eq!(scrubbed(&reversed), reversed);
    }

    #[test]
    fn base64_is_found_at_every_alignment() {
        for prefix in ["", "x", "xy", "xyz", "Bearer:"] {
            let encoded = STANDARD.encode(format!("{prefix}{SECRET}!?"));
            let out = scrubbed(&encoded);
            // All but the one or two characters at each edge of the secret's
            // run are gone.
            let left = out.replace(REDACTED, "").len();
            let run = 8 * SECRET.len() / 6 - 2;
            assert!(
                left <= encoded.len() - run,
                "{prefix:?}: {encoded} -> {out}"
            );
        }
        // A Basic header is replaced whole: its pair is a protected value.
        let basic = format!("Basic {}", STANDARD.encode(format!("svc:{SECRET}")));
        assert_eq!(scrubbed(&basic), "Basic [REDACTED]");
    }

    #[test]
    fn short_values_and_forms_are_not_looked_for() {
        assert!(Patterns::new(["abc"]).is_none());
        let p = Patterns::new(["abcd"]).unwrap();
        assert_eq!(
            p.scrub_str("abcd YWJjZA== 61626364"),
            "[REDACTED] [REDACTED] [REDACTED]"
        );
        // The inner base64 of `abcd` at offset 1 is four characters: too
        // common to replace.
        assert_eq!(p.scrub_str("xYWJj"), "xYWJj");
    }

    #[test]
    fn a_streamed_body_is_scrubbed_across_every_split() {
        let body = format!(
            "{{\"echo\": \"{SECRET}\", \"b64\": \"{}\"}}",
            STANDARD.encode(SECRET)
        );
        let expected = scrubbed(&body);
        assert!(!expected.contains(SECRET));
        let patterns = patterns();
        for first in 0..body.len() {
            for second in first..body.len() {
                let mut stream = StreamScrubber::new(patterns.clone());
                let mut out = Vec::new();
                for chunk in [&body[..first], &body[first..second], &body[second..]] {
                    out.extend_from_slice(&stream.push(Bytes::copy_from_slice(chunk.as_bytes())));
                }
                out.extend_from_slice(&stream.finish());
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    expected,
                    "split at {first}, {second}"
                );
            }
        }
    }

    #[test]
    fn a_clean_chunk_is_passed_on_without_a_copy() {
        let patterns = patterns();
        let mut stream = StreamScrubber::new(patterns.clone());
        let chunk = Bytes::from(vec![b'a'; 4096]);
        let out = stream.push(chunk.clone());
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        let held = stream.carry.len();
        assert_eq!(held, patterns.longest - 1);
        assert_eq!(out.len() + held, 4096);
        assert_eq!(stream.finish().len(), held);
    }
}
