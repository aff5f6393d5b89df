//! `cano dashboard`: a small web UI over a store, served by this binary.
//!
//! Server-rendered HTML, no JavaScript. Pages:
//!
//! * `/runs` (`/` redirects there), `?status=failed|waiting|rolling-back|malformed|…`:
//!   the runs, as `cano runs list` shows them;
//! * `/runs/RUN_ID`: where the run stopped and why, its path drawn as a diagram (SVG),
//!   every row of its log, and its pending signals.
//!
//! Actions (send a signal, purge a run) are off unless the dashboard was started with a
//! token (`--token` or `CANO_DASHBOARD_TOKEN`): then `POST /login` with the token starts
//! a session (an `HttpOnly`, `SameSite=Strict` cookie), and every action form carries the
//! session's CSRF token, which the server checks along with the `Origin` header. Without
//! a token the dashboard is read-only.
//!
//! The store is opened for each request and closed after it, so a redb file is held only
//! while a page is being built (the program that owns the runs can open it in between).
//! One request per connection (`Connection: close`), requests up to 64 KiB.

use crate::error::Failure;
use crate::report::{self, PathRow, RunView};
use crate::runs;
use crate::store::StoreSpec;
use cano::Signal;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request accepted (head and body).
const MAX_REQUEST: usize = 64 * 1024;

/// The dashboard's shared state.
struct Dashboard {
    spec: StoreSpec,
    token: Option<String>,
    /// Session id → CSRF token.
    sessions: Mutex<HashMap<String, String>>,
}

/// `cano dashboard`: serve until the process is stopped.
///
/// # Errors
/// The address cannot be listened on (in use, not local, no permission).
pub async fn serve(
    spec: StoreSpec,
    listen: SocketAddr,
    token: Option<String>,
) -> Result<(), Failure> {
    if token.as_deref().is_some_and(|t| t.len() < 12) {
        return Err(Failure::usage(
            "--token must be at least 12 characters (it is the only thing between a visitor and \
             the actions)",
        ));
    }
    // Checked once at start: a store that cannot be opened is an error now, not a page.
    drop(spec.open().await?);
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the port is in use by another program; pick another with --listen".to_string()
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "the address is not one of this machine's".to_string()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges)".to_string()
            }
            _ => e.to_string(),
        };
        Failure::error(format!("cannot listen on {listen}: {why}"))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::error(format!("cannot read the listening address: {e}")))?;
    let mode = if token.is_some() {
        "actions on for logged-in sessions"
    } else {
        "read-only: start with --token to allow actions"
    };
    println!(
        "cano dashboard for {} on http://{local}/ ({mode})",
        spec.name()
    );
    let dashboard = Arc::new(Dashboard {
        spec,
        token,
        sessions: Mutex::new(HashMap::new()),
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("dashboard: accept failed: {e}");
                continue;
            }
        };
        let dashboard = Arc::clone(&dashboard);
        tokio::spawn(async move {
            let _ = dashboard.connection(stream).await;
        });
    }
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    form: HashMap<String, String>,
}

/// A response.
struct Response {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Response {
    fn html(status: &'static str, title: &str, body: &str) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
            body: page(title, body),
        }
    }

    fn redirect(to: &str) -> Self {
        Self {
            status: "303 See Other",
            headers: vec![("Location", to.to_string())],
            body: String::new(),
        }
    }

    fn error(status: &'static str, message: &str) -> Self {
        Self::html(
            status,
            status,
            &format!(
                "<h1>{}</h1><p>{}</p><p><a href=\"/runs\">All runs</a></p>",
                esc(status),
                esc(message)
            ),
        )
    }
}

impl Dashboard {
    async fn connection(&self, mut stream: TcpStream) -> std::io::Result<()> {
        let response = match read_request(&mut stream).await {
            Ok(request) => self.route(&request).await,
            Err(why) => Response::error("400 Bad Request", &why),
        };
        let mut head = format!("HTTP/1.1 {}\r\n", response.status);
        for (name, value) in &response.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        let _ = write!(
            head,
            "Content-Length: {}\r\nConnection: close\r\nX-Frame-Options: DENY\r\n\
             Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; form-action 'self'\r\n\
             Cache-Control: no-store\r\n\r\n",
            response.body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(response.body.as_bytes()).await?;
        stream.shutdown().await
    }

    async fn route(&self, req: &Request) -> Response {
        let path = req.path.trim_end_matches('/');
        match (req.method.as_str(), path) {
            ("GET", "") => Response::redirect("/runs"),
            ("GET", "/runs") => self.list(req).await,
            ("POST", "/login") => self.login(req).await,
            ("GET", p) if p.starts_with("/runs/") => match decode(&p["/runs/".len()..]) {
                Some(id) => self.show(req, &id).await,
                None => Response::error("400 Bad Request", "the run id is not valid URL text"),
            },
            ("POST", p) if p.starts_with("/runs/") => {
                let rest = &p["/runs/".len()..];
                let Some((id, action)) = rest.rsplit_once('/') else {
                    return Response::error("404 Not Found", "no such action");
                };
                match decode(id) {
                    Some(id) => self.act(req, &id, action).await,
                    None => Response::error("400 Bad Request", "the run id is not valid URL text"),
                }
            }
            ("GET" | "POST", _) => Response::error("404 Not Found", "no such page"),
            _ => Response::error("405 Method Not Allowed", "only GET and POST are served"),
        }
    }

    /// The session of a request, if it has a valid one: its CSRF token.
    fn session(&self, req: &Request) -> Option<String> {
        let cookie = req.headers.get("cookie")?;
        let id = cookie
            .split(';')
            .filter_map(|c| c.trim().strip_prefix("cano_session="))
            .next()?;
        self.sessions.lock().ok()?.get(id).cloned()
    }

    async fn list(&self, req: &Request) -> Response {
        let filter = req.query.get("status").map(String::as_str).unwrap_or("");
        let runs = match self.runs().await {
            Ok(runs) => runs,
            Err(e) => return Response::error("503 Service Unavailable", &e.to_string()),
        };
        let now = report::now_ms();
        let mut body = format!("<h1>Runs in {}</h1>", esc(&self.spec.name()));
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for run in &runs {
            match counts.iter_mut().find(|(s, _)| *s == run.status) {
                Some((_, n)) => *n += 1,
                None => counts.push((run.status, 1)),
            }
        }
        body.push_str("<p class=\"filters\">Status: <a href=\"/runs\">all</a>");
        for (status, n) in &counts {
            let _ = write!(
                body,
                " · <a href=\"/runs?status={s}\">{s}</a> ({n})",
                s = esc(status)
            );
        }
        body.push_str("</p>");
        let shown: Vec<&RunView> = runs
            .iter()
            .filter(|r| filter.is_empty() || r.status == filter)
            .collect();
        if shown.is_empty() {
            body.push_str("<p>No runs.</p>");
        } else {
            body.push_str(
                "<table><tr><th>Run</th><th>Status</th><th>Last state</th><th>Rows</th>\
                 <th>Started (UTC)</th><th>Updated (UTC)</th><th>Detail</th></tr>",
            );
            for run in shown {
                let _ = write!(
                    body,
                    "<tr><td><a href=\"/runs/{href}\">{id}</a></td><td class=\"s-{status}\">{status}</td>\
                     <td>{state}</td><td>{rows}</td><td>{started}</td><td>{updated}</td><td>{detail}</td></tr>",
                    href = encode(&run.run_id),
                    id = esc(&run.run_id),
                    status = esc(run.status),
                    state = esc(&run.last_state),
                    rows = run.rows,
                    started = esc(&report::utc_cell(run.started_ms)),
                    updated = esc(&report::utc_cell(run.updated_ms)),
                    detail = esc(&run.detail(now)),
                );
            }
            body.push_str("</table>");
        }
        body.push_str(&self.login_box(req));
        Response::html("200 OK", "cano: runs", &body)
    }

    async fn runs(&self) -> Result<Vec<RunView>, Failure> {
        let store = self.spec.open().await?;
        runs::all_runs(store.as_ref(), &self.spec).await
    }

    async fn show(&self, req: &Request, run_id: &str) -> Response {
        let loaded = async {
            let store = self.spec.open().await?;
            // A run of the cluster runtime (PostgreSQL) has a status of its own, and may
            // have no log (not started yet, or ended).
            let cluster = match store.cluster() {
                Some(client) => client.status(run_id).await?,
                None => None,
            };
            let inspected = runs::inspect(store.as_ref(), &self.spec, run_id).await;
            Ok::<_, Failure>((inspected, cluster))
        };
        let (inspected, cluster) = match loaded.await {
            Ok(found) => found,
            Err(e) => return Response::error("503 Service Unavailable", &e.to_string()),
        };
        let (path, run, pending) = match (inspected, &cluster) {
            (Ok(found), _) => found,
            (Err(e), Some(status)) if e.to_string().contains("holds no run") => {
                return self.cluster_page(req, run_id, status);
            }
            (Err(e), None) if e.to_string().contains("holds no run") => {
                return Response::error("404 Not Found", &e.to_string());
            }
            (Err(e), _) => return Response::error("503 Service Unavailable", &e.to_string()),
        };
        let now = report::now_ms();
        let mut body = format!(
            "<p><a href=\"/runs\">All runs</a></p><h1>Run {}</h1><p class=\"s-{status}\">{status}, {} rows</p>\
             <p><b>Started:</b> {} · <b>last written:</b> {} (UTC)</p>\
             <p><b>Stopped:</b> {}</p>",
            esc(run_id),
            run.rows,
            esc(&report::utc_cell(run.started_ms)),
            esc(&report::utc_cell(run.updated_ms)),
            esc(&runs::why(&run, &path, &pending, now)),
            status = esc(run.status),
        );
        if let Some(status) = &cluster {
            body.push_str(&cluster_summary(status));
        }
        body.push_str("<h2>Path</h2>");
        body.push_str(&svg(&path));
        body.push_str("<h2>Timeline</h2><table><tr><th>#</th><th>What</th></tr>");
        for step in &path {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td></tr>",
                step.sequence(),
                esc(&runs::describe(step))
            );
        }
        body.push_str("</table>");
        if !pending.is_empty() {
            body.push_str("<h2>Pending signals</h2><ul>");
            for s in &pending {
                let _ = write!(
                    body,
                    "<li>{} (id {}): <code>{}</code></li>",
                    esc(&s.name),
                    esc(&s.id),
                    esc(&s.payload.to_string())
                );
            }
            body.push_str("</ul>");
        }
        body.push_str("<h2>Actions</h2>");
        let owner_only = if cluster.is_some() {
            ""
        } else {
            "<p>Cancel and retry need the program that owns the workflow (or a run of the \
             cluster runtime).</p>"
        };
        match (&self.token, self.session(req)) {
            (None, _) => {
                body.push_str("<p>This dashboard is read-only (started without --token).</p>");
                body.push_str(owner_only);
            }
            (Some(_), None) => body.push_str(&self.login_box(req)),
            (Some(_), Some(csrf)) => {
                let href = encode(run_id);
                let signal_name = run.signal.clone().unwrap_or_default();
                let _ = write!(
                    body,
                    "<form method=\"post\" action=\"/runs/{href}/signal\"><fieldset><legend>Send a signal</legend>\
                     <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <label>Name <input name=\"name\" value=\"{name}\" required></label> \
                     <label>Id <input name=\"id\" placeholder=\"(generated)\"></label> \
                     <label>Payload (JSON) <input name=\"payload\" value=\"null\" required></label> \
                     <button id=\"send-signal\" type=\"submit\">Send</button></fieldset></form>\
                     <form method=\"post\" action=\"/runs/{href}/purge\"><fieldset><legend>Purge</legend>\
                     <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <button id=\"purge\" type=\"submit\">Clear this run's log for good</button></fieldset></form>",
                    csrf = esc(&csrf),
                    name = esc(&signal_name),
                );
                match &cluster {
                    Some(status) => body.push_str(&cluster_forms(run_id, status, &csrf)),
                    None => body.push_str(owner_only),
                }
            }
        }
        if let Some(note) = req.query.get("done") {
            let _ = write!(body, "<p class=\"note\">{}</p>", esc(note));
        }
        Response::html("200 OK", &format!("cano: run {run_id}"), &body)
    }

    /// The page of a cluster run that has no log (not started yet, or ended).
    fn cluster_page(&self, req: &Request, run_id: &str, status: &ClusterStatus) -> Response {
        let mut body = format!(
            "<p><a href=\"/runs\">All runs</a></p><h1>Run {}</h1>{}\
             <p>The run has no checkpoint log: it has not started, or it ended.</p><h2>Actions</h2>",
            esc(run_id),
            cluster_summary(status)
        );
        match (&self.token, self.session(req)) {
            (None, _) => {
                body.push_str("<p>This dashboard is read-only (started without --token).</p>")
            }
            (Some(_), None) => body.push_str(&self.login_box(req)),
            (Some(_), Some(csrf)) => body.push_str(&cluster_forms(run_id, status, &csrf)),
        }
        if let Some(note) = req.query.get("done") {
            let _ = write!(body, "<p class=\"note\">{}</p>", esc(note));
        }
        Response::html("200 OK", &format!("cano: run {run_id}"), &body)
    }

    fn login_box(&self, req: &Request) -> String {
        match (&self.token, self.session(req)) {
            (Some(_), None) => "<form method=\"post\" action=\"/login\"><fieldset><legend>Log in to act on runs</legend>\
                 <label>Token <input type=\"password\" name=\"token\" required></label> \
                 <button id=\"login\" type=\"submit\">Log in</button></fieldset></form>"
                .to_string(),
            _ => String::new(),
        }
    }

    async fn login(&self, req: &Request) -> Response {
        let Some(expected) = &self.token else {
            return Response::error("403 Forbidden", "this dashboard is read-only (no --token)");
        };
        if !same_origin(req) {
            return Response::error("403 Forbidden", "the form was posted from another site");
        }
        let given = req.form.get("token").map(String::as_str).unwrap_or("");
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Response::error("403 Forbidden", "wrong token");
        }
        let (Some(session), Some(csrf)) = (random_hex().await, random_hex().await) else {
            return Response::error("500 Internal Server Error", "no randomness for a session");
        };
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(session.clone(), csrf);
        }
        let mut response = Response::redirect(
            req.headers
                .get("referer")
                .and_then(|r| r.find("/runs").map(|i| &r[i..]))
                .unwrap_or("/runs"),
        );
        response.headers.push((
            "Set-Cookie",
            format!("cano_session={session}; HttpOnly; SameSite=Strict; Path=/"),
        ));
        response
    }

    async fn act(&self, req: &Request, run_id: &str, action: &str) -> Response {
        if self.token.is_none() {
            return Response::error("403 Forbidden", "this dashboard is read-only (no --token)");
        }
        let Some(csrf) = self.session(req) else {
            return Response::error(
                "403 Forbidden",
                "log in first (your session is missing or has expired)",
            );
        };
        let given = req.form.get("csrf").map(String::as_str).unwrap_or("");
        if !same_origin(req) || !constant_time_eq(given.as_bytes(), csrf.as_bytes()) {
            return Response::error(
                "403 Forbidden",
                "the form's CSRF token does not match your session",
            );
        }
        let back = |note: &str| {
            Response::redirect(&format!("/runs/{}?done={}", encode(run_id), encode(note)))
        };
        match action {
            "signal" => {
                let name = req
                    .form
                    .get("name")
                    .map(String::as_str)
                    .unwrap_or("")
                    .trim();
                let payload = req.form.get("payload").map(String::as_str).unwrap_or("");
                let id = match req
                    .form
                    .get("id")
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                {
                    Some(id) => id.to_string(),
                    None => format!("dashboard-{}", report::now_ms()),
                };
                if name.is_empty() {
                    return Response::error("400 Bad Request", "the signal needs a name");
                }
                let signal = match Signal::from_json(name, id.as_str(), payload) {
                    Ok(signal) => signal,
                    Err(e) => {
                        return Response::error(
                            "400 Bad Request",
                            &format!("the payload: {}; nothing was sent", e.message()),
                        );
                    }
                };
                let sent = async {
                    let store = self.spec.open().await?;
                    runs::load(store.as_ref(), &self.spec, run_id).await?;
                    Ok::<_, Failure>(store.send_signal(run_id, signal).await?)
                };
                match sent.await {
                    Ok(true) => back(&format!("sent signal {name:?} (id {id:?})")),
                    Ok(false) => back(&format!(
                        "the run already has a signal with id {id:?}: nothing changed"
                    )),
                    Err(e) if e.to_string().contains("holds no run") => {
                        Response::error("404 Not Found", &e.to_string())
                    }
                    Err(e) => Response::error("503 Service Unavailable", &e.to_string()),
                }
            }
            "purge" => {
                let purged = async {
                    let store = self.spec.open().await?;
                    runs::load(store.as_ref(), &self.spec, run_id).await?;
                    store.clear(run_id).await?;
                    Ok::<_, Failure>(())
                };
                match purged.await {
                    Ok(()) => Response::redirect(&format!(
                        "/runs?done={}",
                        encode(&format!("purged {run_id}"))
                    )),
                    Err(e) if e.to_string().contains("holds no run") => {
                        Response::error("404 Not Found", &e.to_string())
                    }
                    Err(e) => Response::error("503 Service Unavailable", &e.to_string()),
                }
            }
            "cancel" | "retry" => {
                let acted = async {
                    let store = self.spec.open().await?;
                    let Some(client) = store.cluster() else {
                        return Ok(Err(Response::error(
                            "400 Bad Request",
                            "this store has no cluster runs: a run is cancelled or retried by \
                             the program that owns its workflow",
                        )));
                    };
                    Ok::<_, Failure>(Ok(if action == "cancel" {
                        runs::cluster_cancel(&client, run_id).await?.1
                    } else {
                        client.retry(run_id).await?;
                        format!("run {run_id:?} is ready again: a worker of its queue resumes it")
                    }))
                };
                match acted.await {
                    Ok(Ok(note)) => back(&note),
                    Ok(Err(response)) => response,
                    Err(e) if e.to_string().contains("there is no run") => {
                        Response::error("404 Not Found", &e.to_string())
                    }
                    Err(e) if e.to_string().contains("can be retried") => {
                        Response::error("409 Conflict", &e.to_string())
                    }
                    Err(e) => Response::error("503 Service Unavailable", &e.to_string()),
                }
            }
            _ => Response::error("404 Not Found", "no such action"),
        }
    }
}

/// A cluster run's status, as [`cano::cluster::Client::status`] reads it.
type ClusterStatus = cano::cluster::RunStatus;

/// What the cluster's table says of a run: its status, worker, attempts and error.
fn cluster_summary(status: &ClusterStatus) -> String {
    let mut text = format!(
        "<p><b>Cluster:</b> <span class=\"s-{state}\">{state}</span> (workflow {}, queue {}, \
         attempt {}{})",
        esc(&status.workflow),
        esc(&status.queue),
        status.attempts,
        status
            .worker
            .as_deref()
            .map(|w| format!(", worker {}", esc(w)))
            .unwrap_or_default(),
        state = status.state.as_str(),
    );
    if status.cancel_requested && !status.state.is_finished() {
        text.push_str(", cancel requested");
    }
    text.push_str("</p>");
    if let Some(error) = &status.error {
        let _ = write!(text, "<p><b>Error:</b> {}</p>", esc(error));
    }
    text
}

/// The cancel and retry forms a cluster run's state allows.
fn cluster_forms(run_id: &str, status: &ClusterStatus, csrf: &str) -> String {
    use cano::cluster::RunState;
    let href = encode(run_id);
    let csrf = esc(csrf);
    let mut forms = String::new();
    if !status.state.is_finished() {
        let _ = write!(
            forms,
            "<form method=\"post\" action=\"/runs/{href}/cancel\"><fieldset><legend>Cancel</legend>\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button id=\"cancel\" type=\"submit\">Cancel this run (its completed saga steps are compensated)</button>\
             </fieldset></form>"
        );
    }
    if matches!(status.state, RunState::Failed | RunState::Parked) {
        let _ = write!(
            forms,
            "<form method=\"post\" action=\"/runs/{href}/retry\"><fieldset><legend>Retry</legend>\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button id=\"retry\" type=\"submit\">Make this run ready again</button>\
             </fieldset></form>"
        );
    }
    forms
}

/// Read one request: head, then a form body of `Content-Length` bytes.
async fn read_request(stream: &mut TcpStream) -> Result<Request, String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_REQUEST {
            return Err("the request is too large".into());
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the request: {e}"))?;
        if n == 0 {
            return Err("the connection closed before the request ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| "the request head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err("the request line is malformed".into());
    };
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = match headers.get("content-length") {
        Some(n) => n.parse().map_err(|_| "Content-Length is not a number")?,
        None => 0,
    };
    if length > MAX_REQUEST {
        return Err("the request body is too large".into());
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the request body: {e}"))?;
        if n == 0 {
            return Err("the connection closed before the body ended".into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let form = if method == "POST" {
        parse_form(std::str::from_utf8(&body).map_err(|_| "the form is not UTF-8")?)?
    } else {
        HashMap::new()
    };
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: parse_form(query)?,
        headers,
        form,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `application/x-www-form-urlencoded` pairs.
fn parse_form(text: &str) -> Result<HashMap<String, String>, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match (decode(&k.replace('+', " ")), decode(&v.replace('+', " "))) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(format!("{pair:?} is not valid URL-encoded text")),
            }
        })
        .collect()
}

/// Percent-decoding; `None` for a bad escape or text that is not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encoding of everything but unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// HTML-escaped text.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A POST whose `Origin` (if the browser sent one) is this server.
fn same_origin(req: &Request) -> bool {
    match (req.headers.get("origin"), req.headers.get("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin == &format!("http://{host}"),
        (Some(_), None) => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 128 random bits as hex, from the operating system.
async fn random_hex() -> Option<String> {
    let mut bytes = [0_u8; 16];
    tokio::fs::File::open("/dev/urandom")
        .await
        .ok()?
        .read_exact(&mut bytes)
        .await
        .ok()?;
    Some(bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// The run's path as an SVG: one box per state entered, in order, a step cursor or a
/// wait as a note beside it, the rollback in red; the box the run stopped in outlined.
fn svg(path: &[PathRow]) -> String {
    let nodes: Vec<(String, bool)> = path
        .iter()
        .filter_map(|step| match step {
            PathRow::StateEntry { state, visit, .. } => Some((
                if *visit > 1 {
                    format!("{state} (visit {visit})")
                } else {
                    state.clone()
                },
                false,
            )),
            PathRow::RollbackStarted { .. } => Some(("rollback".to_string(), true)),
            _ => None,
        })
        .collect();
    let (w, h, gap) = (260, 34, 22);
    let height = nodes.len() * (h + gap) + 10;
    let mut out = format!(
        "<svg class=\"path\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" \
         role=\"img\" aria-label=\"the run's path\">",
        w + 20
    );
    for (i, (label, rollback)) in nodes.iter().enumerate() {
        let y = 5 + i * (h + gap);
        let last = i + 1 == nodes.len();
        let (fill, stroke) = if *rollback {
            ("#fde2e2", "#b00020")
        } else if last {
            ("#fff4ce", "#8a6d00")
        } else {
            ("#e8f0fe", "#3367d6")
        };
        let width = if last { 3 } else { 1 };
        let _ = write!(
            out,
            "<rect x=\"10\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"6\" fill=\"{fill}\" \
             stroke=\"{stroke}\" stroke-width=\"{width}\"/><text x=\"{}\" y=\"{}\" \
             text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"13\">{}</text>",
            10 + w / 2,
            y + h / 2 + 5,
            esc(label)
        );
        if !last {
            let (x, y1, y2) = (10 + w / 2, y + h, y + h + gap);
            let _ = write!(
                out,
                "<line x1=\"{x}\" y1=\"{y1}\" x2=\"{x}\" y2=\"{}\" stroke=\"#555\"/>\
                 <polygon points=\"{},{} {},{} {x},{y2}\" fill=\"#555\"/>",
                y2 - 6,
                x - 5,
                y2 - 7,
                x + 5,
                y2 - 7
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// A whole page.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:70em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}\
         .s-failed,.s-malformed{{color:#b00020}}.s-waiting{{color:#8a6d00}}.s-rolling-back{{color:#b05000}}\
         fieldset{{margin:.5em 0}}.note{{background:#e6f4ea;padding:.5em}}</style></head>\
         <body>{body}</body></html>",
        esc(title)
    )
}
