//! A plugin that misbehaves on purpose, one action per kind of misbehaviour. The
//! end-to-end tests call each one and then check that the host still serves a
//! normal call.

use std::collections::BTreeMap;

use aerie_sdk::{Actions, Error, Plugin, http};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct Hostile;

impl Plugin for Hostile {
    fn actions() -> Actions {
        // Misbehaving at load: `describe` builds this list.
        if aerie_sdk::setting("on_describe").as_deref() == Some("spin") {
            let _: Result<Nothing, Error> = spin(Empty {});
        }
        Actions::new()
            .action("noop", "Do nothing (the baseline for benchmarks)", noop)
            .action("spin", "Loop forever", spin)
            .action("alloc", "Allocate and touch `mb` MiB", alloc)
            .action("recurse", "Recurse without end", recurse)
            .action("panic", "Panic with a message", panic)
            .action("fetch", "Request a URL with the given headers", fetch)
            .action(
                "observe",
                "Report everything the sandbox lets the plugin see",
                observe,
            )
            .action("read", "Read a file by path", read)
            .action("chatty", "Write `kb` KiB to stderr, then succeed", chatty)
            .action(
                "log",
                "Log `lines` lines of `message` through wasi:logging",
                log,
            )
            .action(
                "headers",
                "Create `sets` wasi:http header sets of `kb` KiB each and hold them",
                headers,
            )
            .action(
                "flood",
                "Request `url` `n` times; count what was answered and refused",
                flood,
            )
    }
}

aerie_sdk::export!(Hostile);

#[derive(Deserialize, JsonSchema)]
struct Empty {}

#[derive(Serialize, JsonSchema)]
struct Nothing {}

fn noop(_: Empty) -> Result<Nothing, Error> {
    Ok(Nothing {})
}

fn spin(_: Empty) -> Result<Nothing, Error> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[derive(Deserialize, JsonSchema)]
struct Alloc {
    mb: usize,
}

fn alloc(input: Alloc) -> Result<Value, Error> {
    let mut chunks = Vec::new();
    for _ in 0..input.mb {
        chunks.push(vec![1u8; 1 << 20]);
    }
    Ok(json!({ "allocated_mb": chunks.len() }))
}

#[derive(Deserialize, JsonSchema)]
struct Depth {
    depth: u64,
}

fn recurse(input: Depth) -> Result<Value, Error> {
    fn down(n: u64, pad: [u64; 16]) -> u64 {
        if n == 0 {
            return pad[0];
        }
        std::hint::black_box(down(n - 1, std::hint::black_box(pad)) + 1)
    }
    Ok(json!({ "depth": down(input.depth, [1; 16]) }))
}

#[derive(Deserialize, JsonSchema)]
struct Message {
    message: String,
}

fn panic(input: Message) -> Result<Nothing, Error> {
    panic!("{}", input.message)
}

#[derive(Deserialize, JsonSchema)]
struct Fetch {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// GET unless given, sent as written (`TRACE`, `TRACK`...).
    #[serde(default)]
    method: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct Fetched {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn fetch(input: Fetch) -> Result<Fetched, Error> {
    use aerie_sdk::bindings::wasi::http::types::Method;
    let mut request = match input.method {
        Some(method) => http::Request::new(Method::Other(method), &input.url),
        None => http::get(&input.url),
    };
    for (name, value) in &input.headers {
        request = request.header(name, value);
    }
    let response = request.send()?;
    Ok(Fetched {
        status: response.status,
        body: String::from_utf8_lossy(&response.body).into_owned(),
        headers: response.headers,
    })
}

#[derive(Deserialize, JsonSchema)]
struct Observe {
    /// A URL to fetch, to see the response as the plugin gets it.
    url: Option<String>,
    /// Reported back as `needle_seen`: whether this text appears in anything the
    /// plugin observed.
    needle: String,
    /// More texts, each reported back in `needles_seen` when it appears (the
    /// encoded forms of a secret, say).
    #[serde(default)]
    needles: Vec<String>,
}

fn observe(input: Observe) -> Result<Value, Error> {
    let mut seen = json!({
        "env": std::env::vars().collect::<Vec<_>>(),
        "args": std::env::args().collect::<Vec<_>>(),
        "cwd": std::env::current_dir().map(|p| p.display().to_string()).ok(),
        "settings": aerie_sdk::settings(),
        "root": list("/"),
        "data": list("/data"),
        "etc_passwd": std::fs::read_to_string("/etc/passwd").ok(),
    });
    if let Some(url) = &input.url {
        let response = http::get(url).send()?;
        seen["response"] = json!({
            "status": response.status,
            "headers": response.headers,
            "body": String::from_utf8_lossy(&response.body),
        });
    }
    // Compared with the raw text as well as the JSON, where `/` and `"` would
    // be escaped.
    let text = format!("{seen} {}", seen["response"]["body"].as_str().unwrap_or(""));
    let needle_seen = text.contains(&input.needle);
    let needles_seen: Vec<&String> = input
        .needles
        .iter()
        .filter(|n| text.contains(n.as_str()))
        .collect();
    Ok(json!({ "seen": seen, "needle_seen": needle_seen, "needles_seen": needles_seen }))
}

fn list(dir: &str) -> Option<Vec<String>> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
    )
}

#[derive(Deserialize, JsonSchema)]
struct Chatty {
    kb: usize,
}

fn chatty(input: Chatty) -> Result<Value, Error> {
    let line = "x".repeat(1023);
    for _ in 0..input.kb {
        eprintln!("{line}");
    }
    Ok(json!({ "wrote_kb": input.kb }))
}

#[derive(Deserialize, JsonSchema)]
struct Read {
    path: String,
}

fn read(input: Read) -> Result<Value, Error> {
    std::fs::read_to_string(&input.path)
        .map(|text| json!({ "text": text }))
        .map_err(|e| Error::not_found(format!("{}: {e}", input.path)))
}

#[derive(Deserialize, JsonSchema)]
struct Log {
    lines: u32,
    message: String,
}

fn log(input: Log) -> Result<Nothing, Error> {
    for n in 0..input.lines {
        aerie_sdk::log::info(&format!("{} {n}", input.message));
    }
    Ok(Nothing {})
}

#[derive(Deserialize, JsonSchema)]
struct Flood {
    url: String,
    n: u32,
}

#[derive(Serialize, JsonSchema)]
struct Flooded {
    answered: u32,
    refused: u32,
}

fn flood(input: Flood) -> Result<Flooded, Error> {
    let (mut answered, mut refused) = (0, 0);
    for _ in 0..input.n {
        match http::get(&input.url).send() {
            Ok(_) => answered += 1,
            Err(_) => refused += 1,
        }
    }
    Ok(Flooded { answered, refused })
}

#[derive(Deserialize, JsonSchema)]
struct Headers {
    sets: usize,
    kb: usize,
}

/// Each set is made by the host and held in its resource table; the guest
/// keeps only the handles.
fn headers(input: Headers) -> Result<Value, Error> {
    use aerie_sdk::bindings::wasi::http::types::Fields;
    let value = vec![b'a'; input.kb * 1024];
    let mut held = Vec::new();
    for n in 0..input.sets {
        let fields = Fields::new();
        if let Err(e) = fields.append("x-pad", &value) {
            return Err(Error::internal(format!("set {n}: {e:?}")));
        }
        held.push(fields);
    }
    Ok(json!({ "held": held.len() }))
}
