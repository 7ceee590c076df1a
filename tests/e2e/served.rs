//! `aerie serve` as an operator runs it: the binary in a site, its address
//! read from what it prints, and a real HTTP/1.1 client (hyper) talking to it.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use serde_json::Value;

use crate::harness::Site;

/// A running `aerie serve`; killed when dropped.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    /// What it printed on stderr, read once it has stopped.
    stderr: Option<std::process::ChildStderr>,
}

impl Served {
    /// Starts `aerie serve` in `site` with `env`, and waits until it listens.
    pub fn start(site: &Site, env: &[(&str, &str)]) -> Served {
        Served::start_with(site, &[], env)
    }

    /// [`Served::start`] with more arguments to `aerie serve`.
    pub fn start_with(site: &Site, args: &[&str], env: &[(&str, &str)]) -> Served {
        let mut command = site.aerie();
        command
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line
                    .strip_prefix("aerie: serving http://")
                    .or_else(|| line.strip_prefix("aerie: serving https://"))
                {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = sender.send(addr);
                }
            }
        });
        let stderr = child.stderr.take();
        match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Served {
                child,
                addr: addr.parse().unwrap(),
                stderr,
            },
            Err(_) => {
                let _ = child.kill();
                let mut text = String::new();
                if let Some(mut err) = stderr {
                    let _ = std::io::Read::read_to_string(&mut err, &mut text);
                }
                panic!("aerie serve did not start:\n{text}");
            }
        }
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and stderr.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        (status.code(), self.stderr_text())
    }

    /// SIGKILL: the process gets no chance to tidy up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stderr_text(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut text);
        }
        text
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer: status, headers, body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// One request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = sender
        .send_request(builder.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    request(addr, "POST", path, &all, body.to_owned()).await
}

pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    request(addr, "GET", path, &headers, Bytes::new()).await
}

/// A token made with `aerie token create --as USER`: its last line of stdout.
pub fn token(site: &Site, user: &str) -> String {
    let out = site
        .aerie()
        .args(["token", "create", "--as", user])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().last().unwrap().trim().to_owned()
}

/// The run `id` read through the API, once it has finished.
pub async fn finished(addr: SocketAddr, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = get(addr, &format!("/api/v1/runs/{id}"), Some(token)).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        let status = answer.body["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if matches!(status.as_str(), "succeeded" | "failed" | "waiting") {
            return answer.body;
        }
        assert!(Instant::now() < deadline, "run {id} still {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
