//! Plain text as an Atlassian Document Format document, the form Jira Cloud's
//! v3 API takes for descriptions and comments: a paragraph per blank-line
//! separated block, a hard break per line inside one.

use serde_json::{Value, json};

pub fn document(text: &str) -> Value {
    let text = text.replace("\r\n", "\n");
    let paragraphs: Vec<Value> = text
        .split("\n\n")
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.trim().is_empty())
        .map(paragraph)
        .collect();
    json!({ "type": "doc", "version": 1, "content": paragraphs })
}

fn paragraph(block: &str) -> Value {
    let mut content = Vec::new();
    for (i, line) in block.split('\n').enumerate() {
        if i > 0 {
            content.push(json!({ "type": "hardBreak" }));
        }
        // ADF refuses empty text nodes.
        if !line.is_empty() {
            content.push(json!({ "type": "text", "text": line }));
        }
    }
    json!({ "type": "paragraph", "content": content })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_become_paragraphs_and_lines_hard_breaks() {
        let doc = document("Summary\n\nVT: malicious\nShodan: 22/tcp\n\n\n");
        assert_eq!(
            doc,
            json!({ "type": "doc", "version": 1, "content": [
                { "type": "paragraph", "content": [{ "type": "text", "text": "Summary" }] },
                { "type": "paragraph", "content": [
                    { "type": "text", "text": "VT: malicious" },
                    { "type": "hardBreak" },
                    { "type": "text", "text": "Shodan: 22/tcp" },
                ] },
            ] })
        );
    }
}
