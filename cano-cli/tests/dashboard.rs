//! `cano dashboard` on a real redb store, over real HTTP: the pages, the read-only
//! default, the token login, CSRF, and a signal sent from the page that the program owning
//! the workflow then consumes; on PostgreSQL, a run of the cluster runtime cancelled from
//! its page while a worker runs it, its saga step compensated.

mod support;

use cano::prelude::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::sync::Arc;
use support::{FAILED, ROLLBACK, SIGNAL, TIMER, fixture, store_arg};

const TOKEN: &str = "open-sesame-1234";

/// A running dashboard; killed when dropped.
struct Dashboard {
    child: Child,
    addr: String,
}

impl Dashboard {
    fn start(store: &str, token: Option<&str>) -> Self {
        let (child, addr) = support::start_dashboard(store, token);
        Self { child, addr }
    }

    /// One request; the status code, the headers (lower-case names) and the body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> (u16, HashMap<String, String>, String) {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream.write_all(req.as_bytes()).expect("send");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .expect("a status code");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers, body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.request("GET", path, &[], &[]);
        (status, body)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn the_pages_show_the_runs_and_the_default_is_read_only() {
    let (_dir, path) = fixture();
    let dash = Dashboard::start(&store_arg(&path), None);

    let (status, _, _) = dash.request("GET", "/", &[], &[]);
    assert_eq!(status, 303);
    let (status, page) = dash.get("/runs");
    assert_eq!(status, 200);
    for id in [FAILED, TIMER, SIGNAL, ROLLBACK] {
        assert!(
            page.contains(&format!(">{id}</a>")),
            "{id} missing from {page}"
        );
    }
    assert!(
        page.contains("rolling-back") && page.contains("waiting"),
        "{page}"
    );
    let (_, waiting) = dash.get("/runs?status=waiting");
    assert!(
        waiting.contains(SIGNAL) && waiting.contains(TIMER),
        "{waiting}"
    );
    assert!(!waiting.contains(&format!(">{FAILED}</a>")), "{waiting}");

    let (status, run) = dash.get(&format!("/runs/{SIGNAL}"));
    assert_eq!(status, 200);
    assert!(run.contains("<svg"), "the path is drawn: {run}");
    assert!(run.contains("AwaitApproval"), "{run}");
    assert!(run.contains("read-only"), "{run}");
    assert!(!run.contains("name=\"csrf\""), "no action forms: {run}");

    let (status, missing) = dash.get("/runs/no-such-run");
    assert_eq!(status, 404);
    assert!(missing.contains("holds no run"), "{missing}");
    let (status, _, _) = dash.request(
        "POST",
        &format!("/runs/{SIGNAL}/signal"),
        &[],
        &[("name", "approval"), ("payload", "true")],
    );
    assert_eq!(status, 403, "no token: no actions");
    let (status, _) = dash.get("/nowhere");
    assert_eq!(status, 404);
}

#[test]
fn a_signal_sent_from_the_page_reaches_the_run() {
    let (_dir, path) = fixture();
    let dash = Dashboard::start(&store_arg(&path), Some(TOKEN));
    let run_page = format!("/runs/{SIGNAL}");

    let (status, _, _) = dash.request("POST", "/login", &[], &[("token", "wrong-token-000")]);
    assert_eq!(status, 403);
    let (status, headers, _) = dash.request(
        "POST",
        "/login",
        &[("Referer", &format!("http://{}{run_page}", dash.addr))],
        &[("token", TOKEN)],
    );
    assert_eq!(status, 303);
    assert_eq!(
        headers.get("location").map(String::as_str),
        Some(run_page.as_str())
    );
    let cookie = headers
        .get("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    assert!(headers["set-cookie"].contains("HttpOnly"));
    let session = [("Cookie", cookie.as_str())];

    let (_, _, page) = dash.request("GET", &run_page, &session, &[]);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's CSRF token")
        .to_string();

    let action = format!("{run_page}/signal");
    let approval = r#"{"approved": true, "by": "ana"}"#;
    // Without the session, with a wrong CSRF token, from another site: refused.
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "approval"),
        ("payload", approval),
    ];
    let (status, _, _) = dash.request("POST", &action, &[], &form);
    assert_eq!(status, 403);
    let wrong = [
        ("csrf", "0000"),
        ("name", "approval"),
        ("payload", approval),
    ];
    let (status, _, _) = dash.request("POST", &action, &session, &wrong);
    assert_eq!(status, 403);
    let elsewhere = [session[0], ("Origin", "http://evil.example")];
    let (status, _, _) = dash.request("POST", &action, &elsewhere, &form);
    assert_eq!(status, 403);
    // A malformed payload: 400, nothing written.
    let bad = [
        ("csrf", csrf.as_str()),
        ("name", "approval"),
        ("payload", "{approved"),
    ];
    let (status, _, body) = dash.request("POST", &action, &session, &bad);
    assert_eq!(status, 400, "{body}");

    let (status, headers, _) = dash.request("POST", &action, &session, &form);
    assert_eq!(status, 303);
    let (_, _, after) = dash.request("GET", &headers["location"], &session, &[]);
    assert!(after.contains("sent signal"), "{after}");
    assert!(after.contains("Pending signals"), "{after}");
    drop(dash);

    // The program that owns the workflow resumes the run: it consumes the approval.
    support::runtime().block_on(support::resume_approved(Arc::new(
        RedbCheckpointStore::new(&path).unwrap(),
    )));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let (_dir, path) = fixture();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(assert_cmd::cargo::cargo_bin("cano"))
        .args(["dashboard", "--store", &store_arg(&path), "--listen", &addr])
        .env_remove("CANO_DASHBOARD_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the port is in use"), "{err}");
}

/// Log in to `dash` from `page`: the session header and the page's CSRF token.
fn log_in(dash: &Dashboard, page: &str) -> ([(&'static str, String); 1], String) {
    let (status, headers, _) = dash.request(
        "POST",
        "/login",
        &[("Referer", &format!("http://{}{page}", dash.addr))],
        &[("token", TOKEN)],
    );
    assert_eq!(status, 303);
    let cookie = headers
        .get("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let (_, _, body) = dash.request("GET", page, &[("Cookie", &cookie)], &[]);
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's CSRF token")
        .to_string();
    ([("Cookie", cookie)], csrf)
}

/// The states of the cluster workflow `"hold"`: a saga step, then a task that never ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
enum Hold {
    Reserve,
    Wait,
    Done,
}

/// `Reserve`: counts its compensations.
struct Reserve(Arc<std::sync::atomic::AtomicUsize>);

#[saga::task(state = Hold)]
impl Reserve {
    type Output = ();
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Hold>, ()), CanoError> {
        Ok((TaskResult::Single(Hold::Wait), ()))
    }
    async fn compensate(&self, _res: &Resources, _out: ()) -> Result<(), CanoError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// `Wait`: tells the test it is running, then never ends.
struct Wait(Arc<tokio::sync::Notify>);

#[task(state = Hold)]
impl Wait {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Hold>, CanoError> {
        self.0.notify_one();
        std::future::pending().await
    }
}

#[test]
fn a_cancel_sent_from_the_page_ends_a_running_cluster_run() {
    use cano::cancel::CancellationToken;
    use cano::cluster::{Client, Registry, RunState, Worker};
    use std::time::Duration;

    let Some(url) = support::pg::fresh_database("dashboard_cancel") else {
        return;
    };
    let rt = support::runtime();
    let compensated = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let waiting = Arc::new(tokio::sync::Notify::new());
    let registry = {
        let (compensated, waiting) = (Arc::clone(&compensated), Arc::clone(&waiting));
        Registry::new().register("hold", move |(): ()| {
            Ok(Workflow::bare()
                .register_with_compensation(Hold::Reserve, Reserve(Arc::clone(&compensated)))
                .register(Hold::Wait, Wait(Arc::clone(&waiting)))
                .add_exit_state(Hold::Done))
        })
    };
    let (client, run, stop, worker) = rt.block_on(async {
        let store = support::pg::connect(&url).await.with_worker_id("w-1");
        let client = Client::new(store.clone()).with_poll_interval(Duration::from_millis(20));
        let run = client
            .submit("hold", &(), &Hold::Reserve, None)
            .await
            .unwrap();
        let (stop, token) = CancellationToken::new();
        let worker = Worker::new(store, registry).with_poll_interval(Duration::from_millis(20));
        let worker = tokio::spawn(async move { worker.run(token).await });
        waiting.notified().await;
        (client, run, stop, worker)
    });

    let dash = Dashboard::start(&url, Some(TOKEN));
    let page = format!("/runs/{run}");
    let (session, csrf) = log_in(&dash, &page);
    let session = [(session[0].0, session[0].1.as_str())];
    let (status, _, body) = dash.request("GET", &page, &session, &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<b>Cluster:</b>"), "{body}");
    assert!(body.contains(">running</span>"), "{body}");
    assert!(body.contains("id=\"cancel\""), "{body}");
    assert!(
        !body.contains("id=\"retry\""),
        "a running run cannot be retried: {body}"
    );

    let action = format!("{page}/cancel");
    // Without the CSRF token: refused, nothing changes.
    let (status, _, _) = dash.request("POST", &action, &session, &[("csrf", "0000")]);
    assert_eq!(status, 403);
    let (status, headers, _) = dash.request("POST", &action, &session, &[("csrf", &csrf)]);
    assert_eq!(status, 303);
    let (_, _, after) = dash.request("GET", &headers["location"], &session, &[]);
    assert!(after.contains("asked the cluster to cancel run"), "{after}");

    // The worker cancels the run: its saga step is compensated once.
    let ended = rt
        .block_on(client.wait(&run, Duration::from_secs(30)))
        .unwrap();
    assert_eq!(ended.state, RunState::Cancelled, "{ended:?}");
    assert_eq!(compensated.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Its page (no log left) shows the end; a cancelled run offers neither action.
    let (status, _, body) = dash.request("GET", &page, &session, &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(">cancelled</span>"), "{body}");
    assert!(
        !body.contains("id=\"cancel\"") && !body.contains("id=\"retry\""),
        "{body}"
    );
    let (status, _, _) = dash.request(
        "POST",
        "/runs/no-such-run/cancel",
        &session,
        &[("csrf", &csrf)],
    );
    assert_eq!(status, 404);
    stop.cancel();
    rt.block_on(worker).unwrap().unwrap();
}
