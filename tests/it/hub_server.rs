//! A small HTTP/1.1 server that answers like the Hugging Face Hub for repositories made from
//! files in memory, for offline download tests.
//!
//! It speaks what hf-hub and huggingface_hub rely on:
//! - `GET /api/models/{repo}/revision/{rev}[?blobs=true]`: `{"id", "sha", "siblings": [{"rfilename", "size", "lfs": {"sha256", "size"}}]}`
//!   (`lfs` for weight-like files only);
//! - `GET /{repo}/resolve/{rev}/{file}`: small files answer with a *relative* redirect to
//!   `/api/resolve-cache/models/{repo}/{commit}/{file}` (as the Hub does), weight-like ("LFS")
//!   files with an absolute redirect to a CDN path on the same server carrying `X-Linked-Etag`;
//!   both carry `X-Repo-Commit`, and the final answers carry `ETag`, `Content-Length` and, for
//!   `Range` requests, `206` with `Content-Range` (hf-hub probes sizes with `Range: bytes=0-0`);
//!   as on the Hub, the ETag of an LFS file is the SHA-256 of its content, that of any other file
//!   its git blob SHA-1 (the names the cache gives the blobs);
//! - errors with the Hub's `X-Error-Code`: `RepoNotFound`, `RevisionNotFound`, `EntryNotFound`
//!   (404), `GatedRepo` (401 without a token, 403 with the wrong one).
//!
//! Switches: [`FakeHub::stop`] (the port then refuses connections), [`FakeHub::truncate`] (cut
//! a file's body short, two ways), [`FakeHub::corrupt_times`] (flip a byte of a file in its next
//! transfers), [`FakeHub::fail_with`] (answer every request with a status).
//! Every request is recorded with its `Authorization` and `Range` headers.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A repository: commits (each a set of files) and the branches/refs pointing at them.
#[derive(Clone, Default)]
pub struct FakeRepo {
    refs: HashMap<String, String>,
    commits: HashMap<String, BTreeMap<String, Vec<u8>>>,
    gated_token: Option<String>,
}

impl FakeRepo {
    pub fn new() -> Self {
        FakeRepo::default()
    }

    /// Adds a commit (a 40-digit hex hash) holding `files`.
    pub fn commit(mut self, hash: &str, files: Vec<(String, Vec<u8>)>) -> Self {
        self.commits
            .insert(hash.to_string(), files.into_iter().collect());
        self
    }

    /// Points a branch or ref (`main`, `refs/pr/1`) at a commit.
    pub fn branch(mut self, name: &str, hash: &str) -> Self {
        self.refs.insert(name.to_string(), hash.to_string());
        self
    }

    /// Only requests with `Authorization: Bearer {token}` get in.
    pub fn gated(mut self, token: &str) -> Self {
        self.gated_token = Some(token.to_string());
        self
    }

    fn resolve(&self, rev: &str) -> Option<&str> {
        if let Some(c) = self.refs.get(rev) {
            return Some(c);
        }
        self.commits.get_key_value(rev).map(|(k, _)| k.as_str())
    }
}

/// How to cut a file's body short.
#[derive(Clone, Copy, Debug)]
pub enum Truncation {
    /// Announce the full length but close the connection after this many bytes of the file.
    CloseEarly(usize),
    /// Answer as if the file ended after this many bytes (consistent headers, short file), while
    /// the size probe still reports the full size.
    ShortBody(usize),
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub range: Option<String>,
}

#[derive(Default)]
struct State {
    repos: HashMap<String, FakeRepo>,
    requests: Vec<Recorded>,
    /// File → how to cut it, and how many more times (`None`: always).
    truncations: HashMap<String, (Truncation, Option<usize>)>,
    /// File → how many more transfers get one byte flipped (`None`: all).
    corruptions: HashMap<String, Option<usize>>,
    fail_status: Option<u16>,
}

pub struct FakeHub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHub {
    pub fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = state.clone();
            let stopping = stopping.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, addr, &state);
                    });
                }
                // The listener is dropped here: the port refuses connections from now on.
            })
        };
        FakeHub {
            addr,
            state,
            stopping,
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_repo(&self, id: &str, repo: FakeRepo) {
        self.state
            .lock()
            .unwrap()
            .repos
            .insert(id.to_string(), repo);
    }

    /// Cuts the body of every file called `file` (in any repository) short; `None` restores it.
    pub fn truncate(&self, file: &str, how: Option<Truncation>) {
        let mut state = self.state.lock().unwrap();
        match how {
            Some(t) => state.truncations.insert(file.to_string(), (t, None)),
            None => state.truncations.remove(file),
        };
    }

    /// Cuts the next `times` transfers of `file` short, then serves it whole again.
    pub fn truncate_times(&self, file: &str, how: Truncation, times: usize) {
        let mut state = self.state.lock().unwrap();
        state
            .truncations
            .insert(file.to_string(), (how, Some(times)));
    }

    /// Flips one byte (in the middle) of `file` in its next `times` transfers (`None`: in all of
    /// them), while the headers keep announcing the intact file's hash and size.
    pub fn corrupt_times(&self, file: &str, times: Option<usize>) {
        let mut state = self.state.lock().unwrap();
        state.corruptions.insert(file.to_string(), times);
    }

    /// Answers every request with this status (`None`: normal service).
    pub fn fail_with(&self, status: Option<u16>) {
        self.state.lock().unwrap().fail_status = status;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// Requests that transferred the content of `file` (size probes not counted).
    pub fn downloads_of(&self, file: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                (r.path.starts_with("/cdn/") || r.path.starts_with("/api/resolve-cache/"))
                    && r.path.ends_with(&format!("/{file}"))
                    && r.range.as_deref() != Some("bytes=0-0")
            })
            .count()
    }

    /// Stops serving; later connections are refused.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stopping.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr);
            let _ = thread.join();
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `127.0.0.1` endpoint where nothing listens (bound, then released).
pub fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// The Hub's ETag for a file: the SHA-256 of an LFS file, the git blob SHA-1 of any other.
fn etag(file: &str, data: &[u8]) -> String {
    use sha2::Digest;
    let digest: Vec<u8> = if is_lfs(file) {
        sha2::Sha256::digest(data).to_vec()
    } else {
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", data.len()).as_bytes());
        h.update(data);
        h.finalize().to_vec()
    };
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_lfs(file: &str) -> bool {
    [".safetensors", ".bin", ".h5", ".ot", ".msgpack", ".onnx"]
        .iter()
        .any(|x| file.ends_with(x))
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Declared length when it differs from the body (to cut the connection short).
    declared_len: Option<usize>,
}

impl Reply {
    fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            declared_len: None,
        }
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }

    fn error(status: u16, code: &str, message: &str) -> Self {
        let mut r = Reply::new(status)
            .header("X-Error-Code", code)
            .header("X-Error-Message", message)
            .header("Content-Type", "application/json");
        r.body = format!("{{\"error\":\"{message}\"}}").into_bytes();
        r
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn serve(stream: TcpStream, addr: SocketAddr, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let recorded = Recorded {
        path: target.clone(),
        authorization: headers.get("authorization").cloned(),
        range: headers.get("range").cloned(),
    };
    let reply = {
        let mut state = state.lock().unwrap();
        state.requests.push(recorded.clone());
        route(&mut state, addr, &target, &recorded)
    };
    write_reply(stream, reply)
}

fn write_reply(mut stream: TcpStream, reply: Reply) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let len = reply.declared_len.unwrap_or(reply.body.len());
    head.push_str(&format!(
        "Content-Length: {len}\r\nConnection: close\r\n\r\n"
    ));
    stream.write_all(head.as_bytes())?;
    stream.write_all(&reply.body)?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// Checks the gate; `Some(reply)` refuses the request.
fn gate(repo: &FakeRepo, req: &Recorded) -> Option<Reply> {
    let token = repo.gated_token.as_ref()?;
    match req.authorization.as_deref() {
        Some(a) if a == format!("Bearer {token}") => None,
        Some(_) => Some(Reply::error(
            403,
            "GatedRepo",
            "Access to this model is restricted",
        )),
        None => Some(Reply::error(
            401,
            "GatedRepo",
            "Access to this model is restricted",
        )),
    }
}

fn route(state: &mut State, addr: SocketAddr, target: &str, req: &Recorded) -> Reply {
    if let Some(status) = state.fail_status {
        return Reply::error(status, "", "failure switched on");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((repo_id, rev)) = rest.split_once("/revision/") else {
            return Reply::error(404, "", "bad api path");
        };
        let rev = percent_decode(rev);
        let Some(repo) = state.repos.get(repo_id) else {
            return Reply::error(404, "RepoNotFound", "Repository not found");
        };
        if let Some(refused) = gate(repo, req) {
            return refused;
        }
        let Some(commit) = repo.resolve(&rev) else {
            return Reply::error(404, "RevisionNotFound", "Invalid rev id");
        };
        let files = &repo.commits[commit];
        let with_sizes = query.split('&').any(|kv| kv == "blobs=true");
        let siblings: Vec<serde_json::Value> = files
            .iter()
            .map(|(name, data)| {
                if with_sizes && is_lfs(name) {
                    serde_json::json!({
                        "rfilename": name,
                        "size": data.len(),
                        "lfs": {"sha256": etag(name, data), "size": data.len()},
                    })
                } else if with_sizes {
                    serde_json::json!({"rfilename": name, "size": data.len()})
                } else {
                    serde_json::json!({"rfilename": name})
                }
            })
            .collect();
        let body = serde_json::json!({"id": repo_id, "sha": commit, "siblings": siblings});
        let mut r = Reply::new(200).header("Content-Type", "application/json");
        r.body = body.to_string().into_bytes();
        return r;
    }

    if let Some(rest) = path.strip_prefix("/api/resolve-cache/models/") {
        // {org}/{name}/{commit}/{file...}
        let parts: Vec<&str> = rest.splitn(4, '/').collect();
        if parts.len() == 4 {
            let repo_id = format!("{}/{}", parts[0], parts[1]);
            if let Some(data) = state
                .repos
                .get(&repo_id)
                .and_then(|r| r.commits.get(parts[2]))
                .and_then(|c| c.get(parts[3]))
                .cloned()
            {
                return content(state, parts[3], &data, req)
                    .header("X-Repo-Commit", parts[2])
                    .header("ETag", format!("\"{}\"", etag(parts[3], &data)));
            }
        }
        return Reply::error(404, "EntryNotFound", "no such cached entry");
    }

    if let Some(rest) = path.strip_prefix("/cdn/") {
        let parts: Vec<&str> = rest.splitn(4, '/').collect();
        if parts.len() == 4 {
            let repo_id = format!("{}/{}", parts[0], parts[1]);
            if let Some(data) = state
                .repos
                .get(&repo_id)
                .and_then(|r| r.commits.get(parts[2]))
                .and_then(|c| c.get(parts[3]))
                .cloned()
            {
                return content(state, parts[3], &data, req)
                    .header("ETag", format!("\"{}\"", etag(parts[3], &data)));
            }
        }
        return Reply::error(404, "", "no such blob");
    }

    if let Some((repo_part, after)) = path.split_once("/resolve/") {
        let repo_id = repo_part.trim_start_matches('/');
        let Some((rev, file)) = after.split_once('/') else {
            return Reply::error(404, "EntryNotFound", "no file");
        };
        let rev = percent_decode(rev);
        let file = percent_decode(file);
        let Some(repo) = state.repos.get(repo_id) else {
            return Reply::error(404, "RepoNotFound", "Repository not found");
        };
        if let Some(refused) = gate(repo, req) {
            return refused;
        }
        let Some(commit) = repo.resolve(&rev) else {
            return Reply::error(404, "RevisionNotFound", "Invalid rev id");
        };
        let Some(data) = repo.commits[commit].get(&file) else {
            return Reply::error(404, "EntryNotFound", "Entry not found");
        };
        return if is_lfs(&file) {
            Reply::new(302)
                .header(
                    "Location",
                    format!("http://{addr}/cdn/{repo_id}/{commit}/{file}"),
                )
                .header("X-Repo-Commit", commit)
                .header("X-Linked-Etag", format!("\"{}\"", etag(&file, data)))
                .header("X-Linked-Size", data.len().to_string())
        } else {
            Reply::new(307)
                .header(
                    "Location",
                    format!("/api/resolve-cache/models/{repo_id}/{commit}/{file}"),
                )
                .header("X-Repo-Commit", commit)
                .header("ETag", format!("\"{}\"", etag(&file, data)))
        };
    }
    Reply::error(404, "", "no route")
}

/// A file's bytes, honouring `Range` and the truncation and corruption switches.
fn content(state: &mut State, file: &str, data: &[u8], req: &Recorded) -> Reply {
    let total = data.len();
    let probe = req.range.as_deref() == Some("bytes=0-0");
    let corrupt = match state.corruptions.get_mut(file) {
        Some(Some(0)) | None => false,
        _ if probe => false,
        Some(Some(n)) => {
            *n -= 1;
            true
        }
        Some(None) => true,
    };
    let data: std::borrow::Cow<[u8]> = if corrupt && total > 0 {
        let mut flipped = data.to_vec();
        flipped[total / 2] ^= 0x01;
        flipped.into()
    } else {
        data.into()
    };
    let data = &*data;
    let range = req.range.as_deref().and_then(|r| {
        let spec = r.strip_prefix("bytes=")?;
        let (a, b) = spec.split_once('-')?;
        let a: usize = a.parse().ok()?;
        let b: Option<usize> = if b.is_empty() { None } else { b.parse().ok() };
        Some((a, b))
    });
    let truncation = match state.truncations.get_mut(file) {
        Some((how, times)) if !probe => {
            let how = *how;
            match times {
                Some(0) => None,
                Some(n) => {
                    *n -= 1;
                    Some(how)
                }
                None => Some(how),
            }
        }
        _ => None,
    };
    let Some((start, end)) = range else {
        let mut r = Reply::new(200);
        r.body = data.to_vec();
        apply(&mut r, truncation, 0);
        return r;
    };
    if start >= total {
        return Reply::new(416).header("Content-Range", format!("bytes */{total}"));
    }
    let mut end = end.unwrap_or(total - 1).min(total - 1);
    if let Some(Truncation::ShortBody(keep)) = truncation {
        end = end.min(keep.saturating_sub(1)).max(start);
    }
    let mut r = Reply::new(206).header("Content-Range", format!("bytes {start}-{end}/{total}"));
    r.body = data[start..=end].to_vec();
    apply(&mut r, truncation, start);
    r
}

fn apply(reply: &mut Reply, truncation: Option<Truncation>, start: usize) {
    match truncation {
        Some(Truncation::CloseEarly(keep)) => {
            let keep = keep.saturating_sub(start).min(reply.body.len());
            reply.declared_len = Some(reply.body.len());
            reply.body.truncate(keep);
        }
        Some(Truncation::ShortBody(keep)) if reply.status == 200 => {
            reply.body.truncate(keep);
        }
        _ => {}
    }
}
