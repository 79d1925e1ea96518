//! Where model files come from: the catalogue of known models, the Hugging Face Hub and its
//! cache, or a local directory — all resolved to one [`ModelFiles`] of checked local paths.
//!
//! How a model is found:
//! 1. The user's text becomes a [`ModelSpec`]: a catalogue name (default [`DEFAULT_MODEL`]), a
//!    Hub id `ORG/NAME[@REVISION]`, or a directory path.
//! 2. A catalogue name is looked up in the [`Catalogue`] (built-in manifests plus the user's),
//!    giving a Hub repository and a pinned revision.
//! 3. For a Hub model the cache is tried first (`refs/<revision>` → `snapshots/<commit>`). A
//!    complete, intact snapshot is used without any network access, so a model is downloaded
//!    once and never again.
//! 4. Otherwise (and never in offline mode) the Hub's repository API gives the commit and file
//!    list; `config.json` is fetched first, its `model_type` decides which tokenizer files are
//!    needed, and only those plus one weight file (`model.safetensors` when the revision has it,
//!    else `pytorch_model.bin`) are fetched, into the standard cache layout shared with Python.
//! 5. The files are checked cheaply (present, non-empty, JSON parses, protobuf and safetensors
//!    framing, zip end record, download size) and returned with their [`Provenance`]. Damaged
//!    files give errors that name the file and say how to fix it; readers of the files attach the
//!    same hint to their own errors with [`ModelFiles::explain`].
//! 6. Every download is also checked against the hash the Hub gave for it (SHA-256 for LFS
//!    files, git's blob SHA-1 for the others; the cache names each blob by it) and fetched once
//!    more on a mismatch. [`Resolver::fetch`] hashes the files already cached too, and
//!    [`Resolver::info`] reports a cached file whose content no longer matches its blob's name
//!    ([`Integrity`]); loading from the cache keeps to the cheap checks.
//!
//! The command line is a thin layer over [`Resolver`]:
//! `tolk models list` → [`Resolver::list`], `tolk models fetch X [--force]` →
//! [`Resolver::fetch`], `tolk models info X` → [`Resolver::info`], and
//! `--model X --revision R --offline` →
//! `Resolver::from_env()?.with_offline(true).resolve(&ModelSpec::parse(x)?.with_revision(r)?, &mut bar)`.

mod cache;
pub mod catalogue;
mod files;
#[cfg(feature = "hub")]
mod hub;
mod integrity;
pub mod settings;
mod spec;

use std::path::{Path, PathBuf};

pub use cache::is_commit_hash;
pub use catalogue::{Catalogue, Manifest, ManifestOrigin, Task};
pub use files::{ModelFiles, Origin, Provenance, TokenizerFiles, WeightFormat};
pub use integrity::HashKind;
pub use settings::{HubSettings, Token, DEFAULT_ENDPOINT};
pub use spec::{ModelSpec, DEFAULT_MODEL};

use crate::error::{Error, Result};
use cache::RepoCache;
use files::Fix;
use integrity::Expected;

/// Receives download progress, one file at a time. The command line draws a bar per file on a
/// terminal and stays quiet otherwise; the library itself never prints. `()` ignores everything.
pub trait DownloadProgress {
    /// A download of `file` (`size` bytes in all) begins.
    fn start(&mut self, file: &str, size: u64);
    /// `bytes` more bytes arrived (a resumed download first reports what was already there).
    fn advance(&mut self, bytes: u64);
    /// The download that last started has ended, successfully or not.
    fn finish(&mut self);
}

impl DownloadProgress for () {
    fn start(&mut self, _file: &str, _size: u64) {}
    fn advance(&mut self, _bytes: u64) {}
    fn finish(&mut self) {}
}

/// Options of [`Resolver::fetch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchOptions {
    /// Download every file again even when the cached copy looks intact (repairs a damaged
    /// cache). Default: `false`.
    pub force: bool,
}

impl FetchOptions {
    /// Sets [`FetchOptions::force`].
    #[must_use]
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
}

/// A catalogue entry and whether it can be used offline right now.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedModel {
    /// The manifest.
    pub manifest: Manifest,
    /// `true` when the pinned revision is completely and intactly in the cache.
    pub cached: bool,
}

/// One file found where a model lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// File name (relative to the model directory).
    pub name: String,
    /// Size in bytes (of the blob a cache entry links to).
    pub size: u64,
    /// Full path.
    pub path: PathBuf,
    /// Whether tolk uses this file (false for extras such as `tf_model.h5` or `README.md`).
    pub used: bool,
    /// Whether its content matches the hash its cache blob is named by.
    pub integrity: Integrity,
}

/// Whether a cached file's content matches the hash its blob is named by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// Not checked: a file of a local directory, a file tolk does not use, or a cache entry
    /// that is not a link to a blob named by a hash.
    Unchecked,
    /// The content hashes to the blob's name.
    Verified(HashKind),
    /// The content hashes to `actual`, not to the blob's name `expected`: the file is damaged.
    Mismatch {
        /// The hash function.
        kind: HashKind,
        /// The blob's name: the hash the Hub gave for the file.
        expected: String,
        /// The hash of the content.
        actual: String,
    },
}

/// What is known about a model without the network: for `tolk models info`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// What was asked for.
    pub spec: ModelSpec,
    /// The catalogue entry, for a catalogue name.
    pub manifest: Option<Manifest>,
    /// Hub repository id (none for a directory).
    pub repo: Option<String>,
    /// Revision that would be used.
    pub revision: Option<String>,
    /// Commit the revision points to in the cache, if cached.
    pub commit: Option<String>,
    /// The repository's folder in the cache (what to copy to an offline machine).
    pub cache_folder: Option<PathBuf>,
    /// The snapshot or directory holding the files, if any.
    pub location: Option<PathBuf>,
    /// Files there, sorted by name.
    pub files: Vec<FileEntry>,
    /// Why the model cannot be used offline; `None` when it can.
    pub problem: Option<String>,
}

impl ModelInfo {
    /// `true` when the model can be loaded without the network.
    pub fn ready(&self) -> bool {
        self.problem.is_none()
    }
}

/// A Hub model after the catalogue lookup: which repository, which revision, and how the user
/// named it (for hints).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub spec: ModelSpec,
    pub repo: String,
    pub revision: String,
}

/// Resolves model specs to files: the catalogue plus the Hub settings.
#[derive(Debug, Clone)]
pub struct Resolver {
    settings: HubSettings,
    catalogue: Catalogue,
}

impl Resolver {
    /// A resolver with explicit settings and catalogue.
    pub fn new(settings: HubSettings, catalogue: Catalogue) -> Self {
        Resolver {
            settings,
            catalogue,
        }
    }

    /// Settings from the `HF_*` variables, catalogue from the built-ins and the user's manifest
    /// directory (`TOLK_MODELS_DIR`, else `~/.config/tolk/models`).
    pub fn from_env() -> Result<Self> {
        Ok(Resolver::new(
            HubSettings::from_env(),
            Catalogue::from_env()?,
        ))
    }

    /// Forbids (or allows) network access; `--offline` calls `with_offline(true)`.
    #[must_use]
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.settings.offline = offline;
        self
    }

    /// The Hub settings in use.
    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    /// The catalogue in use.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Finds a model's files, downloading what is missing from the cache unless offline.
    ///
    /// A complete cached snapshot is used without touching the network. A damaged cached file
    /// is an error naming the file and the command that repairs it (`tolk models fetch X
    /// --force`), not a silent download.
    #[tracing::instrument(name = "resolve", skip_all, fields(model = %spec))]
    pub fn resolve(
        &self,
        spec: &ModelSpec,
        progress: &mut dyn DownloadProgress,
    ) -> Result<ModelFiles> {
        let Some(target) = self.target(spec)? else {
            tracing::info!("model from the directory {spec}");
            return from_dir(spec);
        };
        let files = match self.cached(&target) {
            Ok(files) => {
                log_hub_files(&target, &files, "from the cache");
                Ok(files)
            }
            Err(err) if self.settings.offline => Err(err),
            Err(err @ (Error::MissingFile { .. } | Error::Hub { .. })) => {
                let why = match &err {
                    Error::MissingFile { file, .. } => format!("the cached copy lacks {file}"),
                    _ => "not in the cache".to_string(),
                };
                tracing::info!(
                    "{} at {}: {why}; downloading from {}",
                    target.repo,
                    target.revision,
                    self.settings.endpoint
                );
                let files = self.download(&target, false, progress)?;
                log_hub_files(&target, &files, "downloaded");
                Ok(files)
            }
            Err(err) => Err(err),
        };
        files.map(|f| self.with_manifest_language(spec, f))
    }

    /// A catalogue model's files with the manifest's `source_language`, which says outright
    /// what the files may only suggest ([`ModelFiles::source_language`]).
    fn with_manifest_language(&self, spec: &ModelSpec, mut files: ModelFiles) -> ModelFiles {
        if let ModelSpec::Catalogue { name, .. } = spec {
            let manifest = self.catalogue.get(name);
            if let Some(m) = manifest.filter(|m| m.non_commercial()) {
                if files.provenance.origin == Origin::Download {
                    tracing::warn!(
                        "{}: its licence, {}, allows non-commercial use only (see the model card \
                         at https://huggingface.co/{})",
                        m.name,
                        m.license,
                        m.repo
                    );
                }
            }
            if let Some(language) =
                manifest.and_then(|m| crate::segment::Language::new(&m.source_language).ok())
            {
                files.source_language = Some(language.code().to_string());
            }
            if let Some(language) =
                manifest.and_then(|m| crate::segment::Language::new(&m.target_language).ok())
            {
                files.target_language = Some(language.code().to_string());
            }
        }
        files
    }

    /// Makes sure a model is completely in the cache, asking the Hub which commit the revision
    /// names now (so a branch is brought up to date) and downloading what is missing or damaged;
    /// with `force`, everything is downloaded again. For copying a cache to an offline machine
    /// afterwards, see [`ModelInfo::cache_folder`]. In offline mode this only checks the cache
    /// (and refuses `force`); for a directory it only checks the directory.
    pub fn fetch(
        &self,
        spec: &ModelSpec,
        options: &FetchOptions,
        progress: &mut dyn DownloadProgress,
    ) -> Result<ModelFiles> {
        let Some(target) = self.target(spec)? else {
            return from_dir(spec);
        };
        if self.settings.offline {
            if options.force {
                return Err(Error::option(
                    "force",
                    "offline mode (HF_HUB_OFFLINE, or the resolver's offline setting) cannot download anything",
                ));
            }
            return self
                .cached(&target)
                .map(|f| self.with_manifest_language(spec, f));
        }
        self.download(&target, options.force, progress)
            .map(|f| self.with_manifest_language(spec, f))
    }

    /// What is cached (or in the directory) for a model, without the network. The files the
    /// model uses are hashed (about a second for a 300 MB model) and compared with their cache
    /// blobs' names; a mismatch makes the model not [`ModelInfo::ready`].
    pub fn info(&self, spec: &ModelSpec) -> Result<ModelInfo> {
        let target = self.target(spec)?;
        let manifest = match spec {
            ModelSpec::Catalogue { name, .. } => self.catalogue.get(name).cloned(),
            _ => None,
        };
        let mut info = ModelInfo {
            spec: spec.clone(),
            manifest,
            repo: None,
            revision: None,
            commit: None,
            cache_folder: None,
            location: None,
            files: Vec::new(),
            problem: None,
        };
        let result = match &target {
            None => {
                if let ModelSpec::Dir(dir) = spec {
                    info.location = dir.is_dir().then(|| dir.clone());
                }
                from_dir(spec)
            }
            Some(t) => {
                let cache = RepoCache::new(&self.settings.cache_dir, &t.repo);
                info.repo = Some(t.repo.clone());
                info.revision = Some(t.revision.clone());
                info.cache_folder = Some(cache.root().to_path_buf());
                info.commit = cache.commit_for(&t.revision).ok().flatten();
                info.location = info
                    .commit
                    .as_deref()
                    .map(|c| cache.snapshot_dir(c))
                    .filter(|d| d.is_dir());
                self.cached(t)
            }
        };
        let used: Vec<PathBuf> = match &result {
            Ok(files) => files.paths().into_iter().map(Path::to_path_buf).collect(),
            Err(_) => Vec::new(),
        };
        info.problem = result.err().map(|e| e.to_string());
        if let Some(dir) = &info.location {
            let verify = target.is_some();
            info.files = list_files(dir, &used, verify)?;
            let damaged = info.files.iter().find_map(|f| match &f.integrity {
                Integrity::Mismatch {
                    kind,
                    expected,
                    actual,
                } => Some((f, *kind, expected, actual)),
                _ => None,
            });
            if let (None, Some((file, kind, expected, actual))) = (&info.problem, damaged) {
                info.problem = Some(format!(
                    "{} is damaged: its {} is {actual}, not {expected} (the hash the Hub gave for it, which names its blob); run `{}` to download it again",
                    file.path.display(),
                    kind.label(),
                    files::fetch_command(spec)
                ));
            }
        }
        Ok(info)
    }

    /// The catalogue, with whether each entry is in the cache (no network).
    pub fn list(&self) -> Vec<ListedModel> {
        self.catalogue
            .iter()
            .map(|m| {
                let target = Target {
                    spec: ModelSpec::Catalogue {
                        name: m.name.clone(),
                        revision: None,
                    },
                    repo: m.repo.clone(),
                    revision: m.revision.clone(),
                };
                ListedModel {
                    manifest: m.clone(),
                    cached: self.cached(&target).is_ok(),
                }
            })
            .collect()
    }

    /// The Hub repository and revision a spec names; `None` for a directory.
    fn target(&self, spec: &ModelSpec) -> Result<Option<Target>> {
        Ok(match spec {
            ModelSpec::Dir(_) => None,
            ModelSpec::Hub { repo, revision } => Some(Target {
                spec: spec.clone(),
                repo: repo.clone(),
                revision: revision.clone().unwrap_or_else(|| "main".to_string()),
            }),
            ModelSpec::Catalogue { name, revision } => {
                let manifest = self.catalogue.get(name).ok_or_else(|| Error::UnknownModel {
                    name: name.clone(),
                    message: format!(
                        "not in the catalogue (known: {}); a Hub model is written ORG/NAME, a local directory as a path (./dir)",
                        self.catalogue.names().join(", ")
                    ),
                })?;
                Some(Target {
                    spec: spec.clone(),
                    repo: manifest.repo.clone(),
                    revision: revision
                        .clone()
                        .unwrap_or_else(|| manifest.revision.clone()),
                })
            }
        })
    }

    /// The model from the cache alone. Errors: [`Error::Hub`] when the revision is not cached at
    /// all, [`Error::MissingFile`] when the snapshot lacks a file, others for damaged files.
    fn cached(&self, target: &Target) -> Result<ModelFiles> {
        let cache = RepoCache::new(&self.settings.cache_dir, &target.repo);
        let commit = cache.commit_for(&target.revision)?;
        let snapshot = commit.as_deref().map(|c| cache.snapshot_dir(c));
        let (Some(commit), Some(snapshot)) = (commit, snapshot.filter(|d| d.is_dir())) else {
            return Err(Error::Hub {
                repo: target.repo.clone(),
                revision: target.revision.clone(),
                file: files::CONFIG.to_string(),
                message: format!(
                    "the model is not in the cache at {}{}",
                    self.settings.cache_dir.display(),
                    if self.settings.offline {
                        ", and offline mode forbids downloading"
                    } else {
                        ""
                    }
                ),
                hint: self.ways_out(target),
            });
        };
        let provenance = Provenance {
            spec: target.spec.clone(),
            origin: Origin::Cache,
            repo: Some(target.repo.clone()),
            revision: Some(target.revision.clone()),
            commit: Some(commit),
            downloaded: Vec::new(),
        };
        let fix = Fix::cache(&target.spec, &snapshot);
        files::scan(&snapshot, provenance, &fix).map_err(|err| match err {
            Error::MissingFile { dir, file, .. } if self.settings.offline => Error::MissingFile {
                dir,
                file,
                hint: format!(
                    "the cached copy is incomplete and offline mode forbids downloading; {}",
                    self.ways_out(target)
                ),
            },
            other => other,
        })
    }

    #[cfg(feature = "hub")]
    fn download(
        &self,
        target: &Target,
        force: bool,
        progress: &mut dyn DownloadProgress,
    ) -> Result<ModelFiles> {
        hub::fetch(self, target, force, progress)
    }

    #[cfg(not(feature = "hub"))]
    fn download(
        &self,
        target: &Target,
        _force: bool,
        _progress: &mut dyn DownloadProgress,
    ) -> Result<ModelFiles> {
        Err(Error::Hub {
            repo: target.repo.clone(),
            revision: target.revision.clone(),
            file: files::CONFIG.to_string(),
            message: "this build of tolk cannot download (built without the `hub` feature)"
                .to_string(),
            hint: self.ways_out(target),
        })
    }

    /// The two ways to get a model onto a machine that cannot download it.
    pub(crate) fn ways_out(&self, target: &Target) -> String {
        let folder = cache::folder_name(&target.repo);
        format!(
            "on a machine with network access run `{}` and copy its {folder} folder (from its Hugging Face cache) into {} here, or load a local copy of the model from its directory",
            files::fetch_command(&target.spec),
            self.settings.cache_dir.display()
        )
    }
}

/// The model resolution line of a Hub model: repository, revision, commit, snapshot.
fn log_hub_files(target: &Target, files: &ModelFiles, how: &str) {
    let p = &files.provenance;
    tracing::info!(
        commit = %p.commit.as_deref().unwrap_or("?"),
        downloaded = p.downloaded.len(),
        "{} at {} {how}: {}",
        target.repo,
        target.revision,
        files.dir.display()
    );
}

fn from_dir(spec: &ModelSpec) -> Result<ModelFiles> {
    let ModelSpec::Dir(dir) = spec else {
        return Err(Error::option("model", "not a directory"));
    };
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such model directory (a Hub model is written ORG/NAME)",
            ),
        ));
    }
    ModelFiles::from_dir(dir)
}

/// The files in `dir`; with `verify`, those in `used` are hashed and compared with their blobs'
/// names.
fn list_files(dir: &Path, used: &[PathBuf], verify: bool) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        // `metadata` follows the snapshot's links to their blobs; a dangling link counts as 0.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let used = used.contains(&path);
        let integrity = match Expected::of_blob(&path) {
            Some(expected) if verify && used => match expected.mismatch(&path)? {
                None => Integrity::Verified(expected.kind),
                Some(actual) => Integrity::Mismatch {
                    kind: expected.kind,
                    expected: expected.hex,
                    actual,
                },
            },
            _ => Integrity::Unchecked,
        };
        out.push(FileEntry {
            name: entry.file_name().to_string_lossy().into_owned(),
            size: meta.len(),
            used,
            integrity,
            path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
