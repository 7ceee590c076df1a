//! A `multipart/form-data` body with one file part named `file`, as Jira's
//! attachment endpoint takes it (RFC 7578).

use aerie_sdk::Error;

pub struct Form {
    boundary: String,
    body: Vec<u8>,
}

impl Form {
    pub fn file(filename: &str, content_type: &str, content: &[u8]) -> Result<Form, Error> {
        // A name or type that could break out of its header line is refused.
        let unsafe_char = |s: &str| s.chars().any(|c| c.is_control() || c == '"');
        if filename.trim().is_empty() || unsafe_char(filename) {
            return Err(Error::invalid_input(format!(
                "`{filename}` cannot be a file name: it is empty or holds quotes or control characters"
            )));
        }
        if unsafe_char(content_type) || !content_type.contains('/') {
            return Err(Error::invalid_input(format!(
                "`{content_type}` is not a content type"
            )));
        }
        let boundary = boundary(content);
        let mut body = Vec::with_capacity(content.len() + 256);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Ok(Form { boundary, body })
    }

    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    pub fn body(&self) -> Vec<u8> {
        self.body.clone()
    }
}

/// A boundary that does not occur in the content.
fn boundary(content: &[u8]) -> String {
    (0u64..)
        .map(|n| format!("aerie-jira-{n:016x}"))
        .find(|b| !content.windows(b.len()).any(|w| w == b.as_bytes()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_is_not_in_the_content() {
        let content = b"--aerie-jira-0000000000000000 appears here";
        let form = Form::file("hits.json", "application/json", content).unwrap();
        assert!(form.content_type().ends_with("aerie-jira-0000000000000001"));
        let body = String::from_utf8(form.body()).unwrap();
        assert!(body.contains("filename=\"hits.json\"\r\nContent-Type: application/json\r\n\r\n--aerie-jira-0000000000000000 appears here\r\n--aerie-jira-0000000000000001--\r\n"));
    }

    #[test]
    fn a_name_that_breaks_its_header_is_refused() {
        assert!(Form::file("a\"; name=\"x", "text/plain", b"").is_err());
        assert!(Form::file("a\r\nX-Evil: 1", "text/plain", b"").is_err());
    }
}
