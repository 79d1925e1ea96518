//! Downloads from the Hugging Face Hub through hf-hub's blocking API, into the standard cache
//! layout, with errors that say which model and file failed, why (offline, 404, 401/403, 5xx),
//! and how to get the model another way.
//!
//! hf-hub does the file transfer (metadata request, blob, snapshot link, resumable `.part`
//! files, locks). We ask the repository API ourselves for the commit and file list, pick the
//! files, download by commit hash (so every file comes from one commit even if the branch moves),
//! write `refs/<revision>` as huggingface_hub does, and check each download's size and hash
//! (the SHA-256 the repository API lists for an LFS file, else the hash the blob is named by:
//! hf-hub names it by the Hub's `X-Linked-Etag` or `ETag`, which is that same SHA-256 for LFS
//! files and git's blob SHA-1 for the others). A download whose hash is wrong is deleted and
//! fetched once more; a second wrong one is an error naming both hashes.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use serde::Deserialize;

use super::cache::RepoCache;
use super::files::{self, Fix, Origin, Provenance};
use super::integrity::Expected;
use super::{DownloadProgress, ModelFiles, Resolver, Target};
use crate::error::{Error, Result};

/// The repository API's answer (`/api/models/{repo}/revision/{rev}?blobs=true`), the parts we
/// use.
#[derive(Debug, Deserialize)]
struct RepoInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    /// For files stored with Git LFS.
    lfs: Option<LfsInfo>,
}

#[derive(Debug, Deserialize)]
struct LfsInfo {
    sha256: String,
}

impl RepoInfo {
    fn has(&self, name: &str) -> bool {
        self.siblings.iter().any(|s| s.rfilename == name)
    }

    fn size(&self, name: &str) -> Option<u64> {
        self.siblings
            .iter()
            .find(|s| s.rfilename == name)
            .and_then(|s| s.size)
    }

    /// The SHA-256 the repository lists for an LFS file.
    fn sha256(&self, name: &str) -> Option<Expected> {
        self.siblings
            .iter()
            .find(|s| s.rfilename == name)
            .and_then(|s| s.lfs.as_ref())
            .and_then(|lfs| Expected::parse(&lfs.sha256))
    }
}

/// Brings a model's files into the cache and returns them (see [`Resolver::fetch`]).
pub(crate) fn fetch(
    resolver: &Resolver,
    target: &Target,
    force: bool,
    progress: &mut dyn DownloadProgress,
) -> Result<ModelFiles> {
    let session = Session::new(resolver, target)?;
    let info = session.repo_info()?;
    let commit = info.sha.trim().to_string();
    if !super::is_commit_hash(&commit) {
        return Err(session.error(
            "repository information",
            format!("the server gave `{commit}` as the commit, not a commit hash"),
            String::new(),
        ));
    }
    tracing::info!(
        "{} at {} is commit {commit} ({} files listed)",
        target.repo,
        target.revision,
        info.siblings.len()
    );
    let cache = RepoCache::new(&resolver.settings.cache_dir, &target.repo);
    let snapshot = cache.snapshot_dir(&commit);
    let fix = Fix::cache(&target.spec, &snapshot);
    // hf-hub writes `refs/<commit>` when downloading by commit; huggingface_hub never does, so
    // remove it afterwards unless it was there before.
    let stray_ref = cache.ref_path(&commit);
    let stray_ref_existed = stray_ref.exists();

    let mut fetcher = Fetcher {
        session: &session,
        info: &info,
        cache: &cache,
        commit: &commit,
        snapshot: &snapshot,
        fix: &fix,
        force,
        downloaded: Vec::new(),
    };
    let result = fetcher.fetch_all(progress);
    if !stray_ref_existed {
        let _ = std::fs::remove_file(&stray_ref);
    }
    result?;
    let downloaded = fetcher.downloaded;
    cache.write_ref(&target.revision, &commit)?;

    let provenance = Provenance {
        spec: target.spec.clone(),
        origin: if downloaded.is_empty() {
            Origin::Cache
        } else {
            Origin::Download
        },
        repo: Some(target.repo.clone()),
        revision: Some(target.revision.clone()),
        commit: Some(commit.clone()),
        downloaded,
    };
    files::scan(&snapshot, provenance, &fix)
}

struct Fetcher<'a> {
    session: &'a Session<'a>,
    info: &'a RepoInfo,
    cache: &'a RepoCache,
    commit: &'a str,
    snapshot: &'a Path,
    fix: &'a Fix,
    force: bool,
    downloaded: Vec<String>,
}

impl Fetcher<'_> {
    /// `config.json` first (its `model_type` decides the rest), then `tokenizer_config.json`
    /// (Marian's `separate_vocabs`), then the planned files.
    fn fetch_all(&mut self, progress: &mut dyn DownloadProgress) -> Result<()> {
        let listed = |name: &str| self.info.has(name);
        if !listed(files::CONFIG) {
            return Err(self.session.error(
                files::CONFIG,
                format!(
                    "the repository has no {} at this revision: not a transformers model",
                    files::CONFIG
                ),
                String::new(),
            ));
        }
        let config = self.get(files::CONFIG, progress)?;
        let config_value = files::read_json(&config, self.fix)?;
        let architecture = files::architecture_of(&config, &config_value)?;
        let tokenizer_config = if listed(files::TOKENIZER_CONFIG) {
            let path = self.get(files::TOKENIZER_CONFIG, progress)?;
            Some(files::read_json(&path, self.fix)?)
        } else {
            None
        };
        let separate = files::separate_vocabs(tokenizer_config.as_ref());
        let plan = files::plan(architecture, separate, &listed).map_err(|what| {
            self.session.error(
                &what,
                format!("the repository has no {what} at this revision"),
                String::new(),
            )
        })?;
        // Small files first, the weights last: a failed weight download leaves everything else
        // in place for the next attempt.
        for name in &plan.required {
            if !listed(name) {
                return Err(self.session.error(
                    name,
                    format!("the repository has no {name} at this revision"),
                    String::new(),
                ));
            }
            self.get(name, progress)?;
        }
        for name in plan.optional.iter().filter(|n| listed(n)) {
            self.get(name, progress)?;
        }
        self.get(plan.weights, progress)?;
        Ok(())
    }

    /// One file into the snapshot: kept when already there and intact (unless forced),
    /// downloaded otherwise; every download is checked against its hash and fetched once more
    /// if it does not match.
    fn get(&mut self, name: &str, progress: &mut dyn DownloadProgress) -> Result<PathBuf> {
        let local = self.snapshot.join(name);
        if local.is_file() {
            let damaged = files::check_file(&local, self.fix).is_err()
                || self.wrong_hash(name, &local)?.is_some();
            if damaged {
                tracing::info!("{name}: the cached copy is damaged; downloading it again");
                // Damaged: the blob too, which other snapshots may share.
                self.cache.forget(self.commit, name, true)?;
            } else if self.force {
                // hf-hub keeps an existing snapshot entry (a plain file would stay stale) but
                // replaces the blob it downloads; intact blobs shared with other snapshots stay.
                self.cache.forget(self.commit, name, false)?;
            } else {
                tracing::debug!("{name}: cached and intact");
                return Ok(local);
            }
        }
        // A link whose blob is gone needs nothing: the blob comes back under the same name.
        let path = self.download(name, &local, progress)?;
        if let Some((expected, actual)) = self.wrong_hash(name, &path)? {
            tracing::warn!(
                "{name}: the download is corrupt (its {} is {actual}, the Hub gives {}); downloading it again",
                expected.kind.label(),
                expected.hex
            );
            // Damaged on the way (or on disk): once more, from scratch.
            self.cache.forget(self.commit, name, true)?;
            let path = self.download(name, &local, progress)?;
            if let Some((expected, actual)) = self.wrong_hash(name, &path)? {
                self.cache.forget(self.commit, name, true)?;
                return Err(self.session.error(
                    name,
                    format!(
                        "the download is corrupt, twice: its {} is {actual}, but the Hub gives {}",
                        expected.kind.label(),
                        expected.hex
                    ),
                    "a proxy, a mirror or the disk between this machine and the Hub damages the file; try again later, or fetch the model on another machine and copy its cache folder here".to_string(),
                ));
            }
        }
        self.downloaded.push(name.to_string());
        Ok(path)
    }

    /// Downloads `name` and checks that it landed at `local`, the snapshot of the commit asked
    /// for.
    fn download(
        &self,
        name: &str,
        local: &Path,
        progress: &mut dyn DownloadProgress,
    ) -> Result<PathBuf> {
        let path = self
            .session
            .download(name, self.commit, self.info.size(name), progress)?;
        if path != local {
            return Err(self.session.error(
                name,
                format!(
                    "the server sent the file of another commit ({}) than announced ({})",
                    path.parent()
                        .and_then(Path::file_name)
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    self.commit
                ),
                "try again; the repository may be changing right now".to_string(),
            ));
        }
        Ok(path)
    }

    /// The expected hash and the actual one when the content of `path` (the snapshot entry of
    /// `name`) does not match; `None` when it does, or when there is nothing to check against.
    fn wrong_hash(&self, name: &str, path: &Path) -> Result<Option<(Expected, String)>> {
        let Some(expected) = self.info.sha256(name).or_else(|| Expected::of_blob(path)) else {
            return Ok(None);
        };
        Ok(expected.mismatch(path)?.map(|actual| (expected, actual)))
    }
}

/// One resolver's connection to the Hub for one repository.
struct Session<'a> {
    resolver: &'a Resolver,
    target: &'a Target,
    api: Api,
}

impl<'a> Session<'a> {
    fn new(resolver: &'a Resolver, target: &'a Target) -> Result<Self> {
        let settings = &resolver.settings;
        let api = ApiBuilder::from_cache(Cache::new(settings.cache_dir.clone()))
            .with_endpoint(settings.endpoint.clone())
            // hf-hub looks for a token file next to the cache directory; ours comes from
            // HubSettings (HF_TOKEN, HF_HOME/token), so always set it, even to none.
            .with_token(settings.token.as_ref().map(|t| t.expose().to_string()))
            .with_progress(false)
            .with_retries(settings.retries)
            .with_user_agent("tolk", env!("CARGO_PKG_VERSION"))
            .build()
            .map_err(|e| Session::hub_error(resolver, target, "repository information", e))?;
        Ok(Session {
            resolver,
            target,
            api,
        })
    }

    fn repo(&self, revision: &str) -> hf_hub::api::sync::ApiRepo {
        self.api.repo(Repo::with_revision(
            self.target.repo.clone(),
            RepoType::Model,
            revision.to_string(),
        ))
    }

    /// The commit and file list of the requested revision (hf-hub URL-encodes `/` in
    /// revisions such as `refs/pr/1`).
    fn repo_info(&self) -> Result<RepoInfo> {
        const WHAT: &str = "repository information";
        let response = self
            .repo(&self.target.revision)
            .info_request()
            .query("blobs", "true")
            .call()
            .map_err(|e| self.request_error(WHAT, e))?;
        let text = response.into_string().map_err(|e| {
            self.error(
                WHAT,
                format!("the answer could not be read ({e})"),
                String::new(),
            )
        })?;
        serde_json::from_str(&text).map_err(|e| {
            self.error(
                WHAT,
                format!("the answer is not the Hub's repository JSON ({e})"),
                format!(
                    "is {} a Hugging Face Hub (HF_ENDPOINT)?",
                    self.resolver.settings.endpoint
                ),
            )
        })
    }

    /// Downloads `name` at `commit` and checks its size against what the Hub reported.
    fn download(
        &self,
        name: &str,
        commit: &str,
        listed_size: Option<u64>,
        progress: &mut dyn DownloadProgress,
    ) -> Result<PathBuf> {
        let mut bridge = Bridge {
            sink: progress,
            started: false,
            announced: None,
            received: 0,
            next_is_position: false,
        };
        let t = std::time::Instant::now();
        let result = self.repo(commit).download_with_progress(name, &mut bridge);
        let (started, announced) = (bridge.started, bridge.announced);
        if started {
            progress.finish();
        }
        let path = result.map_err(|e| self.api_error(name, e))?;
        let actual = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        if let Some(expected) = listed_size.or(announced) {
            if actual != expected {
                // Drop the bad copy so that the next attempt downloads the file again.
                let cache = RepoCache::new(&self.resolver.settings.cache_dir, &self.target.repo);
                cache.forget(commit, name, true)?;
                return Err(self.error(
                    name,
                    format!("the download is incomplete: {actual} of {expected} bytes arrived"),
                    "run the command again to download it anew".to_string(),
                ));
            }
        }
        let secs = t.elapsed().as_secs_f64();
        tracing::info!(
            "downloaded {name}: {actual} bytes in {secs:.2} s ({:.1} MB/s)",
            actual as f64 / secs.max(1e-6) / 1e6
        );
        Ok(path)
    }

    fn error(&self, file: &str, message: String, hint: String) -> Error {
        Error::Hub {
            repo: self.target.repo.clone(),
            revision: self.target.revision.clone(),
            file: file.to_string(),
            message,
            hint,
        }
    }

    fn api_error(&self, file: &str, err: ApiError) -> Error {
        Session::hub_error(self.resolver, self.target, file, err)
    }

    fn request_error(&self, file: &str, err: ureq::Error) -> Error {
        let (message, hint) = describe_request(self.resolver, self.target, file, err);
        self.error(file, message, hint)
    }

    fn hub_error(resolver: &Resolver, target: &Target, file: &str, err: ApiError) -> Error {
        let (message, hint) = describe_api(resolver, target, file, err);
        Error::Hub {
            repo: target.repo.clone(),
            revision: target.revision.clone(),
            file: file.to_string(),
            message,
            hint,
        }
    }
}

/// Adapts hf-hub's progress calls to one `start` per file and byte counts that add up to the
/// file size. hf-hub announces a file once before opening its temporary file and again before
/// every request (a retry included), and the first update after each announcement is the
/// absolute position the request resumes from, not an increment.
struct Bridge<'a> {
    sink: &'a mut dyn DownloadProgress,
    started: bool,
    announced: Option<u64>,
    received: u64,
    next_is_position: bool,
}

impl hf_hub::api::Progress for &mut Bridge<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        let size = size as u64;
        self.announced = Some(size);
        self.next_is_position = true;
        if !self.started {
            self.started = true;
            self.sink.start(filename, size);
        }
    }

    fn update(&mut self, size: usize) {
        let size = size as u64;
        let step = if std::mem::take(&mut self.next_is_position) {
            size.saturating_sub(self.received)
        } else {
            size
        };
        if step > 0 {
            self.received += step;
            self.sink.advance(step);
        }
    }

    fn finish(&mut self) {}
}

/// Message and hint for an hf-hub error. The token is never part of either: hf-hub's and ureq's
/// errors carry URLs and statuses, not request headers, and we compose the text ourselves.
fn describe_api(
    resolver: &Resolver,
    target: &Target,
    file: &str,
    err: ApiError,
) -> (String, String) {
    let settings = &resolver.settings;
    match err {
        ApiError::RequestError(e) => describe_request(resolver, target, file, *e),
        ApiError::TooManyRetries(inner) => {
            let (message, hint) = describe_api(resolver, target, file, *inner);
            (format!("{message} (after retrying)"), hint)
        }
        ApiError::MissingHeader(h) | ApiError::InvalidHeader(h) => (
            format!("the server's answer lacks a valid `{h}` header"),
            format!("is {} a Hugging Face Hub (HF_ENDPOINT)?", settings.endpoint),
        ),
        ApiError::ParseIntError(_) => (
            "the server sent a malformed Content-Range header".to_string(),
            format!("is {} a Hugging Face Hub (HF_ENDPOINT)?", settings.endpoint),
        ),
        ApiError::IoError(e) if is_network_io(&e) => (
            format!("the connection broke during the download ({e})"),
            format!(
                "run the command again: the download resumes where it stopped; {}",
                resolver.ways_out(target)
            ),
        ),
        ApiError::IoError(e) => (
            format!("cannot write into the cache ({e})"),
            format!(
                "check that {} is writable and has free space (HF_HUB_CACHE or HF_HOME move it)",
                settings.cache_dir.display()
            ),
        ),
        ApiError::LockAcquisition(path) => (
            "another process is downloading this file".to_string(),
            format!(
                "wait for it to finish, or delete {} if no download is running",
                path.display()
            ),
        ),
        ApiError::InvalidResume => (
            "a partial download in the cache is larger than the file".to_string(),
            format!(
                "delete the *.part files in {}",
                RepoCache::new(&settings.cache_dir, &target.repo)
                    .root()
                    .join("blobs")
                    .display()
            ),
        ),
        // Variants behind hf-hub features tolk does not enable (native-tls).
        #[allow(unreachable_patterns)]
        other => (other.to_string(), String::new()),
    }
}

fn is_network_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | TimedOut | BrokenPipe | Interrupted
    )
}

/// Message and hint for an HTTP failure: offline, 404 (which thing is missing, from the Hub's
/// `X-Error-Code`), 401/403 (gated or private), 5xx.
fn describe_request(
    resolver: &Resolver,
    target: &Target,
    file: &str,
    err: ureq::Error,
) -> (String, String) {
    let settings = &resolver.settings;
    let page = format!("{}/{}", settings.endpoint, target.repo);
    let has_token = settings.token.is_some();
    match err {
        ureq::Error::Status(status, response) => {
            let code = response.header("x-error-code").unwrap_or("").to_string();
            match (code.as_str(), status) {
                ("RepoNotFound", _) => (
                    format!("the Hub has no repository {} ({status})", target.repo),
                    if has_token {
                        format!("check the name at {page}; if it is private, the token has no access to it")
                    } else {
                        format!("check the name at {page}; if it is private, set HF_TOKEN")
                    },
                ),
                ("RevisionNotFound", _) => (
                    format!(
                        "the repository has no revision `{}` ({status})",
                        target.revision
                    ),
                    "name a branch, tag, refs/pr/N or commit hash that exists".to_string(),
                ),
                ("EntryNotFound", _) => (
                    format!("the repository has no file {file} at this revision ({status})"),
                    String::new(),
                ),
                ("GatedRepo", _) | (_, 401 | 403) => {
                    let what = if code == "GatedRepo" {
                        "gated"
                    } else {
                        "gated or private"
                    };
                    (
                        format!("access denied ({status}): the repository is {what}"),
                        if has_token {
                            format!("the token in use was refused or lacks access: accept the model's terms at {page} with the token's account, or set another HF_TOKEN")
                        } else {
                            format!("accept the model's terms at {page} and set HF_TOKEN (or log in with `huggingface-cli login`)")
                        },
                    )
                }
                (_, 404) => (
                    "not found (404): no such repository, revision or file".to_string(),
                    format!("check the name and revision at {page}"),
                ),
                (_, 429) => (
                    "the Hub refused: too many requests (429)".to_string(),
                    "wait a few minutes and run again, or set HF_TOKEN for higher limits"
                        .to_string(),
                ),
                (_, 500..=599) => (
                    format!("the server failed ({status}); the Hub may be having trouble"),
                    format!("try again later; meanwhile {}", resolver.ways_out(target)),
                ),
                _ => (
                    format!("unexpected answer from the server ({status})"),
                    String::new(),
                ),
            }
        }
        ureq::Error::Transport(t) => {
            let mut detail = t.kind().to_string();
            if let Some(m) = t.message() {
                detail.push_str(": ");
                detail.push_str(m);
            }
            if let Some(source) = std::error::Error::source(&t) {
                detail.push_str(": ");
                detail.push_str(&source.to_string());
            }
            match t.kind() {
                ureq::ErrorKind::Dns
                | ureq::ErrorKind::ConnectionFailed
                | ureq::ErrorKind::Io
                | ureq::ErrorKind::ProxyConnect => (
                    format!(
                        "cannot reach {} ({detail}): this machine seems to be offline",
                        settings.endpoint
                    ),
                    resolver.ways_out(target),
                ),
                _ => (
                    format!("the request failed ({detail})"),
                    resolver.ways_out(target),
                ),
            }
        }
    }
}
