//! `cano dashboard` in a real browser: headless Chromium (the distribution's `chromium`)
//! driven over the DevTools protocol loads the pages, logs in with the token, sends a
//! signal from the run's page, and takes the screenshot the README shows
//! (`docs/dashboard.png`, written to `target/dashboard.png` here); the program owning the
//! workflow then consumes the signal.
//!
//! Without Chromium the test says so and passes, unless `CANO_REQUIRE_CHROMIUM=1` (set by
//! `.ci/run`, which installs it): then it fails.

mod support;

use cano::prelude::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{SIGNAL, fixture, store_arg};

const TOKEN: &str = "open-sesame-1234";

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| {
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(name))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .find(|p| p.is_file())
}

/// A page of headless Chromium, driven over the DevTools protocol.
struct Page {
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Page {
    fn open(browser: &PathBuf, url: &str, profile: &std::path::Path) -> (Killed, Self) {
        let mut child = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1100,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().expect("chromium stderr");
        let child = Killed(child);
        let mut port = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                port = rest.split('/').next().map(str::to_string);
                break;
            }
        }
        let port = port.expect("chromium printed no DevTools address");
        // The page's own socket, from the target list.
        let list = http_get(&format!("127.0.0.1:{port}"), "/json/list");
        let targets: Value = serde_json::from_str(&list).expect("the target list");
        let ws = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (socket, _) = tungstenite::connect(ws.as_str()).expect("connect to the page");
        (child, Self { socket, next_id: 1 })
    }

    /// Send a DevTools command and return its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket
            .send(tungstenite::Message::text(message))
            .expect("send a command");
        loop {
            let reply = self.socket.read().expect("a reply");
            let Ok(text) = reply.into_text() else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).expect("JSON from chromium");
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
        }
    }

    /// Evaluate `script` in the page; its value.
    fn eval(&mut self, script: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": script, "returnByValue": true, "awaitPromise": true }),
        );
        result["result"]["value"].clone()
    }

    /// Wait until `script` is true in the page (after a navigation, say).
    fn until(&mut self, script: &str) {
        let started = Instant::now();
        while self.eval(script) != Value::Bool(true) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{script} never became true; the page: {}",
                self.eval("document.body ? document.body.innerText : ''")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn http_get(addr: &str, path: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some(body) = try_get(addr, path) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no answer from {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One GET: the body, read up to its `Content-Length` (the server keeps the connection).
fn try_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0_u8; length];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

/// Decode standard base64 (the screenshot's encoding).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0_u32, |acc, (i, &c)| {
            acc | (u32::from(value(c)) << (18 - 6 * i))
        });
        let take = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..=take]);
    }
    out
}

#[test]
fn a_signal_sent_from_the_page_in_chromium_reaches_the_run() {
    let Some(browser) = chromium() else {
        let required = std::env::var("CANO_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "CANO_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install chromium)"
        );
        eprintln!("skipping the browser test: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let (_dir, path) = fixture();
    let (dashboard, addr) = support::start_dashboard(&store_arg(&path), Some(TOKEN));
    let _dashboard = Killed(dashboard);
    let profile = tempfile::tempdir().expect("a browser profile");
    let (_chromium, mut page) =
        Page::open(&browser, &format!("http://{addr}/runs"), profile.path());

    page.until("document.readyState === 'complete' && document.title === 'cano: runs'");
    let text = page.eval("document.body.innerText").to_string();
    for id in [support::FAILED, support::TIMER, SIGNAL, support::ROLLBACK] {
        assert!(text.contains(id), "{id} not on the page: {text}");
    }

    // Log in (the login form is on the list page), then open the waiting run.
    page.eval(&format!(
        "document.querySelector('input[name=token]').value = '{TOKEN}'; \
         document.querySelector('#login').click(); true"
    ));
    page.until("document.readyState === 'complete' && !document.querySelector('#login')");
    page.call(
        "Page.navigate",
        json!({ "url": format!("http://{addr}/runs/{SIGNAL}") }),
    );
    page.until("document.readyState === 'complete' && !!document.querySelector('#send-signal')");
    assert_eq!(
        page.eval("document.querySelectorAll('svg rect').length >= 2"),
        Value::Bool(true)
    );

    // Send the approval from the page's form.
    page.eval(
        r#"document.querySelector('input[name=payload]').value = '{"approved": true, "by": "ana"}';
           document.querySelector('input[name=id]').value = 'browser-1';
           document.querySelector('#send-signal').click(); true"#,
    );
    page.until(
        "document.readyState === 'complete' && document.body.innerText.includes('sent signal')",
    );
    let text = page.eval("document.body.innerText").to_string();
    assert!(text.contains("browser-1"), "{text}");

    // The screenshot the README shows.
    let shot = page.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64(shot["data"].as_str().expect("screenshot data"));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    let _ = std::fs::create_dir_all(&target);
    std::fs::write(target.join("dashboard.png"), &png).expect("write the screenshot");
    drop(_chromium);
    drop(_dashboard);

    // The program that owns the workflow resumes the run: it consumes the approval.
    support::runtime().block_on(support::resume_approved(Arc::new(
        RedbCheckpointStore::new(&path).unwrap(),
    )));
}
