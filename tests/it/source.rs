//! Model sources: downloads from a fake Hub into a temporary cache, offline use of the cache,
//! revisions, weight choice, error messages, integrity checks, catalogue manifests, directories.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tolk::config::Architecture;
use tolk::source::{
    Catalogue, DownloadProgress, FetchOptions, HashKind, HubSettings, Integrity, ManifestOrigin,
    ModelFiles, ModelSpec, Origin, Resolver, TokenizerFiles, WeightFormat,
};
use tolk::Error;

use crate::common::fixture_dir;
use crate::hub_server::{dead_endpoint, FakeHub, FakeRepo, Truncation};

const MAIN: &str = "1111111111111111111111111111111111111111";
const PR1: &str = "2222222222222222222222222222222222222222";
const OLD: &str = "3333333333333333333333333333333333333333";
const OPUS: &str = "Helsinki-NLP/opus-mt-nl-en";

/// The marian-tiny fixture's files, without `except`.
fn fixture_files(except: &[&str]) -> Vec<(String, Vec<u8>)> {
    fixture_files_of("marian-tiny", except)
}

fn fixture_files_of(fixture: &str, except: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixture_dir(fixture)).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if except.contains(&name.as_str()) || name == "reference.json" {
            continue;
        }
        out.push((name, std::fs::read(entry.path()).unwrap()));
    }
    out
}

/// Files a real opus-mt repository also has and tolk must never fetch.
fn extras() -> Vec<(String, Vec<u8>)> {
    [
        "tf_model.h5",
        "rust_model.ot",
        "flax_model.msgpack",
        "onnx/encoder_model.onnx",
        "README.md",
        ".gitattributes",
    ]
    .iter()
    .map(|n| (n.to_string(), b"not for tolk".to_vec()))
    .collect()
}

/// Like Helsinki-NLP/opus-mt-nl-en: `main` has only pytorch_model.bin, the unmerged PR
/// `refs/pr/1` adds model.safetensors.
fn opus_repo() -> FakeRepo {
    let mut main = fixture_files(&["model.safetensors"]);
    main.extend(extras());
    let mut pr = fixture_files(&[]);
    pr.extend(extras());
    FakeRepo::new()
        .commit(MAIN, main)
        .commit(PR1, pr)
        .branch("main", MAIN)
        .branch("refs/pr/1", PR1)
}

fn settings(endpoint: &str, cache: &Path) -> HubSettings {
    HubSettings::default()
        .with_cache_dir(cache)
        .with_endpoint(endpoint)
        .with_token(None)
        .with_retries(0)
}

fn resolver(endpoint: &str, cache: &Path) -> Resolver {
    Resolver::new(settings(endpoint, cache), Catalogue::builtin().unwrap())
}

fn spec(text: &str) -> ModelSpec {
    ModelSpec::parse(text).unwrap()
}

fn fixture_len(name: &str) -> u64 {
    std::fs::metadata(fixture_dir("marian-tiny").join(name))
        .unwrap()
        .len()
}

fn repo_folder(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

#[derive(Default)]
struct Recorder {
    started: Vec<(String, u64)>,
    advanced: HashMap<String, u64>,
    finished: usize,
}

impl DownloadProgress for Recorder {
    fn start(&mut self, file: &str, size: u64) {
        self.started.push((file.to_string(), size));
    }
    fn advance(&mut self, bytes: u64) {
        let (file, _) = self.started.last().expect("advance before start");
        *self.advanced.entry(file.clone()).or_default() += bytes;
    }
    fn finish(&mut self) {
        self.finished += 1;
    }
}

#[test]
fn first_resolve_downloads_then_the_cache_serves_it_without_network() {
    let mut hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());
    let mut progress = Recorder::default();
    let files = r.resolve(&spec(OPUS), &mut progress).unwrap();

    assert_eq!(files.provenance.origin, Origin::Download);
    assert_eq!(files.provenance.commit.as_deref(), Some(MAIN));
    assert_eq!(files.provenance.revision.as_deref(), Some("main"));
    assert_eq!(files.architecture, Architecture::Marian);
    assert_eq!(files.weight_format, WeightFormat::PyTorch);
    let folder = repo_folder(cache.path(), OPUS);
    assert_eq!(files.dir, folder.join("snapshots").join(MAIN));
    assert_eq!(
        std::fs::read_to_string(folder.join("refs/main")).unwrap(),
        MAIN
    );
    assert!(
        !folder.join("refs").join(MAIN).exists(),
        "no ref named after a commit"
    );
    #[cfg(unix)]
    assert!(files.config.is_symlink(), "snapshot entries link to blobs");

    let mut downloaded = files.provenance.downloaded.clone();
    downloaded.sort();
    assert_eq!(
        downloaded,
        [
            "config.json",
            "generation_config.json",
            "pytorch_model.bin",
            "source.spm",
            "target.spm",
            "tokenizer_config.json",
            "vocab.json"
        ]
    );
    for extra in [
        "tf_model.h5",
        "rust_model.ot",
        "flax_model.msgpack",
        "onnx",
        "README.md",
    ] {
        assert!(
            hub.requests().iter().all(|r| !r.path.contains(extra)),
            "{extra} was requested"
        );
    }
    // One bar per file, sized as the Hub says, filled exactly.
    assert_eq!(progress.started.len(), 7);
    assert_eq!(progress.finished, 7);
    for (file, size) in &progress.started {
        assert_eq!(*size, fixture_len(file), "{file}");
        assert_eq!(
            progress.advanced.get(file).copied().unwrap_or(0),
            *size,
            "{file}"
        );
    }

    // Second time: straight from the cache, no request at all.
    hub.clear_requests();
    let again = r.resolve(&spec(OPUS), &mut ()).unwrap();
    assert_eq!(again.provenance.origin, Origin::Cache);
    assert_eq!(again.paths(), files.paths());
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());

    // The server gone and the offline flag set: still fine.
    hub.stop();
    let offline = r
        .clone()
        .with_offline(true)
        .resolve(&spec(OPUS), &mut ())
        .unwrap();
    assert_eq!(offline.paths(), files.paths());
    let after_stop = resolver(&hub.endpoint(), cache.path())
        .resolve(&spec(OPUS), &mut ())
        .unwrap();
    assert_eq!(after_stop.weights, files.weights);
}

#[test]
fn hf_hub_offline_uses_only_the_cache() {
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    let cache = tempfile::tempdir().unwrap();
    let vars: HashMap<&str, String> = [
        ("HF_HUB_CACHE", cache.path().display().to_string()),
        ("HF_ENDPOINT", hub.endpoint()),
        ("HF_HUB_OFFLINE", "1".to_string()),
        ("HF_HOME", "/nonexistent-tolk-hf-home".to_string()),
    ]
    .into_iter()
    .collect();
    let offline_settings = HubSettings::from_vars(|k| vars.get(k).cloned()).with_retries(0);
    assert!(offline_settings.offline);
    let offline = Resolver::new(offline_settings, Catalogue::builtin().unwrap());

    let err = offline.resolve(&ModelSpec::default(), &mut ()).unwrap_err();
    let text = err.to_string();
    for want in [
        "not in the cache",
        "offline mode",
        "tolk models fetch opus-mt-nl-en",
        "a local copy of the model from its directory",
        &cache.path().display().to_string(),
    ] {
        assert!(text.contains(want), "missing `{want}` in: {text}");
    }
    assert!(
        hub.requests().is_empty(),
        "offline mode touched the network"
    );
    let err = offline
        .fetch(
            &ModelSpec::default(),
            &FetchOptions::default().with_force(true),
            &mut (),
        )
        .unwrap_err();
    assert!(err.to_string().contains("offline"), "{err}");

    // Fetched where there is network, then usable offline.
    resolver(&hub.endpoint(), cache.path())
        .fetch(&ModelSpec::default(), &FetchOptions::default(), &mut ())
        .unwrap();
    hub.clear_requests();
    let files = offline.resolve(&ModelSpec::default(), &mut ()).unwrap();
    assert_eq!(files.provenance.origin, Origin::Cache);
    assert!(hub.requests().is_empty());
}

#[test]
fn pinned_revisions_and_pull_request_refs_are_honoured() {
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());

    // Both weight files on refs/pr/1: safetensors wins and the .bin is never fetched.
    let files = r
        .resolve(&spec(&format!("{OPUS}@refs/pr/1")), &mut ())
        .unwrap();
    assert_eq!(files.provenance.commit.as_deref(), Some(PR1));
    assert_eq!(files.weight_format, WeightFormat::Safetensors);
    assert_eq!(hub.downloads_of("pytorch_model.bin"), 0);
    let paths: Vec<String> = hub.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.contains(&format!(
            "/api/models/{OPUS}/revision/refs%2Fpr%2F1?blobs=true"
        )),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with(&format!("/{OPUS}/resolve/{PR1}/"))),
        "files are fetched by commit: {paths:?}"
    );
    let folder = repo_folder(cache.path(), OPUS);
    assert_eq!(
        std::fs::read_to_string(folder.join("refs/refs/pr/1")).unwrap(),
        PR1
    );

    // Only pytorch_model.bin at `main` (given as a commit hash): it is taken.
    let files = r
        .resolve(&spec(OPUS).with_revision(Some(MAIN)).unwrap(), &mut ())
        .unwrap();
    assert_eq!(files.provenance.commit.as_deref(), Some(MAIN));
    assert_eq!(files.weight_format, WeightFormat::PyTorch);
    assert!(files.weights.ends_with("pytorch_model.bin"));
    assert!(!folder.join("refs").join(MAIN).exists());
    assert_eq!(hub.downloads_of("model.safetensors"), 1);
}

#[test]
fn not_found_errors_say_what_is_missing() {
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    hub.add_repo(
        "test/no-target-spm",
        FakeRepo::new()
            .commit(MAIN, fixture_files(&["target.spm"]))
            .branch("main", MAIN),
    );
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());

    let text = r
        .resolve(&spec("test/missing"), &mut ())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("test/missing") && text.contains("no repository") && text.contains("404"),
        "{text}"
    );
    let text = r
        .resolve(&spec(&format!("{OPUS}@nope")), &mut ())
        .unwrap_err()
        .to_string();
    assert!(text.contains("no revision `nope`"), "{text}");
    let err = r.resolve(&spec("test/no-target-spm"), &mut ()).unwrap_err();
    assert!(
        matches!(&err, Error::Hub { file, .. } if file == "target.spm"),
        "{err}"
    );
    assert!(err.to_string().contains("has no target.spm"), "{err}");
    let err = r.resolve(&spec("no-such-name"), &mut ()).unwrap_err();
    assert!(matches!(err, Error::UnknownModel { .. }));
    assert!(err.to_string().contains("opus-mt-nl-en"), "{err}");
}

#[test]
fn an_unreachable_hub_says_offline_and_gives_the_ways_out() {
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&dead_endpoint(), cache.path());
    let err = r.resolve(&ModelSpec::default(), &mut ()).unwrap_err();
    assert!(
        matches!(&err, Error::Hub { repo, file, .. } if repo == OPUS && file == "repository information"),
        "{err:?}"
    );
    let text = err.to_string();
    for want in [
        "opus-mt-nl-en",
        "seems to be offline",
        "tolk models fetch opus-mt-nl-en",
        "a local copy of the model from its directory",
        &cache.path().display().to_string(),
    ] {
        assert!(text.contains(want), "missing `{want}` in: {text}");
    }
}

#[test]
fn gated_repositories_need_the_right_token_which_never_leaks() {
    const RIGHT: &str = "hf_right_token_0123456789";
    const WRONG: &str = "hf_wrong_token_9876543210";
    let hub = FakeHub::start();
    hub.add_repo("test/gated", opus_repo().gated(RIGHT));
    let cache = tempfile::tempdir().unwrap();

    let err = resolver(&hub.endpoint(), cache.path())
        .resolve(&spec("test/gated"), &mut ())
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("access denied (401)") && text.contains("set HF_TOKEN"),
        "{text}"
    );

    let wrong = Resolver::new(
        settings(&hub.endpoint(), cache.path()).with_token(Some(WRONG)),
        Catalogue::builtin().unwrap(),
    );
    let err = wrong.resolve(&spec("test/gated"), &mut ()).unwrap_err();
    let (text, debug) = (err.to_string(), format!("{err:?}"));
    assert!(text.contains("403") && text.contains("refused"), "{text}");
    assert!(
        !text.contains(WRONG) && !debug.contains(WRONG),
        "token leaked: {debug}"
    );
    assert!(
        !format!("{wrong:?}").contains(WRONG),
        "token in Debug of the resolver"
    );
    assert!(hub
        .requests()
        .iter()
        .any(|r| r.authorization.as_deref() == Some(&format!("Bearer {WRONG}"))));

    // The right token, read from HF_HOME/token as `huggingface-cli login` leaves it.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("token"), format!("{RIGHT}\n")).unwrap();
    let vars: HashMap<&str, String> = [
        ("HF_HOME", home.path().display().to_string()),
        ("HF_HUB_CACHE", cache.path().display().to_string()),
        ("HF_ENDPOINT", hub.endpoint()),
    ]
    .into_iter()
    .collect();
    hub.clear_requests();
    let right = Resolver::new(
        HubSettings::from_vars(|k| vars.get(k).cloned()).with_retries(0),
        Catalogue::builtin().unwrap(),
    );
    let files = right.resolve(&spec("test/gated"), &mut ()).unwrap();
    assert_eq!(files.provenance.origin, Origin::Download);
    let requests = hub.requests();
    assert!(!requests.is_empty());
    for r in requests {
        assert_eq!(
            r.authorization,
            Some(format!("Bearer {RIGHT}")),
            "{}",
            r.path
        );
    }
}

#[test]
fn server_errors_are_reported_as_such() {
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    hub.fail_with(Some(503));
    let cache = tempfile::tempdir().unwrap();
    let text = resolver(&hub.endpoint(), cache.path())
        .resolve(&spec(OPUS), &mut ())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("server failed (503)") && text.contains("try again later"),
        "{text}"
    );
}

#[test]
fn a_short_download_is_caught_and_fetched_again_next_time() {
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    hub.truncate("pytorch_model.bin", Some(Truncation::ShortBody(1000)));
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());
    let err = r.resolve(&spec(OPUS), &mut ()).unwrap_err();
    assert!(
        matches!(&err, Error::Hub { file, .. } if file == "pytorch_model.bin"),
        "{err}"
    );
    let text = err.to_string();
    let want = format!("1000 of {} bytes", fixture_len("pytorch_model.bin"));
    assert!(
        text.contains("incomplete") && text.contains(&want),
        "{text}"
    );
    let snapshot = repo_folder(cache.path(), OPUS).join("snapshots").join(MAIN);
    assert!(
        !snapshot.join("pytorch_model.bin").exists(),
        "bad copy kept"
    );

    hub.truncate("pytorch_model.bin", None);
    let files = r.resolve(&spec(OPUS), &mut ()).unwrap();
    assert_eq!(files.provenance.downloaded, ["pytorch_model.bin"]);
    assert_eq!(
        std::fs::metadata(&files.weights).unwrap().len(),
        fixture_len("pytorch_model.bin")
    );
}

#[test]
fn a_broken_connection_resumes_where_it_stopped() {
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    hub.truncate("pytorch_model.bin", Some(Truncation::CloseEarly(500_000)));
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());
    let text = r.resolve(&spec(OPUS), &mut ()).unwrap_err().to_string();
    assert!(
        text.contains("pytorch_model.bin") && text.contains("connection broke"),
        "{text}"
    );

    hub.truncate("pytorch_model.bin", None);
    let mut progress = Recorder::default();
    let files = r.resolve(&spec(OPUS), &mut progress).unwrap();
    // The bar counts the bytes already there, then the rest: exactly the file size.
    let size = fixture_len("pytorch_model.bin");
    assert_eq!(progress.started, [("pytorch_model.bin".to_string(), size)]);
    assert_eq!(progress.advanced["pytorch_model.bin"], size);
    assert_eq!(
        std::fs::read(&files.weights).unwrap(),
        std::fs::read(fixture_dir("marian-tiny").join("pytorch_model.bin")).unwrap()
    );
    let last = hub
        .requests()
        .into_iter()
        .rfind(|r| r.path.starts_with("/cdn/") && r.path.ends_with("pytorch_model.bin"))
        .unwrap();
    assert_eq!(last.range.as_deref(), Some("bytes=500000-"));
}

#[test]
fn a_damaged_cache_file_names_the_file_and_the_repair_command() {
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());
    let files = r.resolve(&ModelSpec::default(), &mut ()).unwrap();
    // Cut the blob behind the snapshot link.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files.weights)
        .unwrap()
        .set_len(100_000)
        .unwrap();

    hub.clear_requests();
    let err = r.resolve(&ModelSpec::default(), &mut ()).unwrap_err();
    assert!(
        matches!(&err, Error::ModelFile { path, .. } if path.ends_with("pytorch_model.bin")),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("truncated") && text.contains("tolk models fetch opus-mt-nl-en --force"),
        "{text}"
    );
    assert!(text.contains(&files.dir.display().to_string()), "{text}");
    assert!(
        hub.requests().is_empty(),
        "a damaged cache is reported, not re-fetched"
    );
    assert!(files.hint_for(&files.weights).contains("--force"));

    let repaired = r
        .fetch(
            &ModelSpec::default(),
            &FetchOptions::default().with_force(true),
            &mut (),
        )
        .unwrap();
    assert_eq!(repaired.provenance.origin, Origin::Download);
    assert_eq!(repaired.provenance.downloaded.len(), 7);
    r.resolve(&ModelSpec::default(), &mut ()).unwrap();
}

#[test]
fn fetch_info_and_list() {
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());

    let listed = r.list();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|m| !m.cached));
    let info = r.info(&ModelSpec::default()).unwrap();
    assert!(!info.ready());
    assert!(info
        .problem
        .as_deref()
        .unwrap()
        .contains("not in the cache"));
    assert_eq!(info.cache_folder, Some(repo_folder(cache.path(), OPUS)));
    assert!(info.files.is_empty());
    assert!(hub.requests().is_empty(), "list and info stay offline");

    let fetched = r
        .fetch(&ModelSpec::default(), &FetchOptions::default(), &mut ())
        .unwrap();
    assert_eq!(fetched.provenance.origin, Origin::Download);
    let listed = r.list();
    let cached: Vec<(&str, bool)> = listed
        .iter()
        .map(|m| (m.manifest.name.as_str(), m.cached))
        .collect();
    assert_eq!(
        cached,
        [
            ("distilbart-cnn-12-6", false),
            ("m2m100_418M", false),
            ("nllb-200-distilled-600M", false),
            ("opus-mt-nl-en", true)
        ]
    );

    let info = r.info(&ModelSpec::default()).unwrap();
    assert!(info.ready(), "{:?}", info.problem);
    assert_eq!(info.commit.as_deref(), Some(MAIN));
    assert_eq!(info.revision.as_deref(), Some("main"));
    assert_eq!(info.manifest.as_ref().unwrap().license, "apache-2.0");
    assert_eq!(info.location.as_deref(), Some(fetched.dir.as_path()));
    let bin = info
        .files
        .iter()
        .find(|f| f.name == "pytorch_model.bin")
        .unwrap();
    assert_eq!(bin.size, fixture_len("pytorch_model.bin"));
    assert!(bin.used);
    assert_eq!(info.files.len(), 7);

    // Fetching again asks the Hub for the commit but transfers nothing.
    hub.clear_requests();
    let again = r
        .fetch(&ModelSpec::default(), &FetchOptions::default(), &mut ())
        .unwrap();
    assert_eq!(again.provenance.origin, Origin::Cache);
    assert_eq!(hub.requests().len(), 1, "{:?}", hub.requests());

    // A moved branch: fetch follows it, and resolve then uses the new commit.
    hub.add_repo(OPUS, opus_repo().branch("main", PR1));
    let moved = r
        .fetch(&ModelSpec::default(), &FetchOptions::default(), &mut ())
        .unwrap();
    assert_eq!(moved.provenance.commit.as_deref(), Some(PR1));
    let files = r.resolve(&ModelSpec::default(), &mut ()).unwrap();
    assert_eq!(files.weight_format, WeightFormat::Safetensors);
}

#[test]
fn user_manifests_add_and_override_models() {
    let hub = FakeHub::start();
    hub.add_repo(
        "test/tiny",
        FakeRepo::new()
            .commit(MAIN, fixture_files(&[]))
            .commit(OLD, fixture_files(&["model.safetensors"]))
            .branch("main", MAIN),
    );
    let user = tempfile::tempdir().unwrap();
    let manifest = |name: &str, revision: &str| {
        format!(
            "name = \"{name}\"\nrepo = \"test/tiny\"\nrevision = \"{revision}\"\n\
             task = \"translation\"\nsource_language = \"nl\"\ntarget_language = \"en\"\n\
             license = \"CC-BY-4.0\"\narchitecture = \"marian\"\n\n[generation]\nnum_beams = 2\n"
        )
    };
    std::fs::write(
        user.path().join("mine.toml"),
        manifest("opus-mt-nl-en", OLD),
    )
    .unwrap();
    std::fs::write(user.path().join("extra.toml"), manifest("tiny", "main")).unwrap();
    std::fs::write(user.path().join("notes.txt"), "ignored").unwrap();

    let catalogue = Catalogue::load(Some(user.path())).unwrap();
    assert_eq!(
        catalogue.names(),
        [
            "distilbart-cnn-12-6",
            "m2m100_418M",
            "nllb-200-distilled-600M",
            "opus-mt-nl-en",
            "tiny"
        ]
    );
    let overridden = catalogue.get("opus-mt-nl-en").unwrap();
    assert_eq!(overridden.repo, "test/tiny");
    assert_eq!(overridden.generation.num_beams, Some(2));
    assert_eq!(
        overridden.origin,
        ManifestOrigin::File(user.path().join("mine.toml"))
    );

    let cache = tempfile::tempdir().unwrap();
    let r = Resolver::new(settings(&hub.endpoint(), cache.path()), catalogue);
    let files = r.resolve(&ModelSpec::default(), &mut ()).unwrap();
    assert_eq!(files.provenance.commit.as_deref(), Some(OLD));
    assert_eq!(files.weight_format, WeightFormat::PyTorch);
    assert!(hub.requests().iter().any(|q| q
        .path
        .starts_with(&format!("/api/models/test/tiny/revision/{OLD}"))));
    let files = r.resolve(&spec("tiny"), &mut ()).unwrap();
    assert_eq!(files.provenance.commit.as_deref(), Some(MAIN));
    // A revision given on the command line replaces the pinned one.
    let files = r
        .resolve(
            &spec("opus-mt-nl-en").with_revision(Some("main")).unwrap(),
            &mut (),
        )
        .unwrap();
    assert_eq!(files.provenance.commit.as_deref(), Some(MAIN));

    // A broken manifest: the error names the file and the line.
    std::fs::write(
        user.path().join("broken.toml"),
        "name = \"b\"\nrepo = \"a/b\"\nrevision = \"main\"\ntask = translation\n",
    )
    .unwrap();
    let text = Catalogue::load(Some(user.path())).unwrap_err().to_string();
    assert!(
        text.contains("broken.toml") && text.contains("line 4"),
        "{text}"
    );
    std::fs::remove_file(user.path().join("broken.toml")).unwrap();
    std::fs::write(user.path().join("twin.toml"), manifest("tiny", "main")).unwrap();
    let text = Catalogue::load(Some(user.path())).unwrap_err().to_string();
    assert!(
        text.contains("twin.toml") && text.contains("already defined"),
        "{text}"
    );
}

#[test]
fn local_directories_resolve_offline_and_name_bad_files() {
    let r = resolver(&dead_endpoint(), Path::new("/nonexistent-tolk-cache"));
    let dir = fixture_dir("marian-tiny");
    let files = r
        .resolve(&spec(&dir.display().to_string()), &mut ())
        .unwrap();
    assert_eq!(files.provenance.origin, Origin::Directory);
    assert_eq!(files.weight_format, WeightFormat::Safetensors);
    assert_eq!(files.dir, dir);

    let copy = tempfile::tempdir().unwrap();
    for (name, data) in fixture_files(&[]) {
        std::fs::write(copy.path().join(name), data).unwrap();
    }
    let weights = copy.path().join("model.safetensors");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_len(500_000)
        .unwrap();
    let copy_spec = spec(&copy.path().display().to_string());
    let text = r.resolve(&copy_spec, &mut ()).unwrap_err().to_string();
    assert!(
        text.contains("model.safetensors")
            && text.contains("truncated")
            && text.contains(&format!(
                "replace model.safetensors in {}",
                copy.path().display()
            )),
        "{text}"
    );
    std::fs::remove_file(copy.path().join("source.spm")).unwrap();
    let err = r.resolve(&copy_spec, &mut ()).unwrap_err();
    assert!(
        matches!(&err, Error::MissingFile { file, .. } if file == "source.spm"),
        "{err}"
    );
    let info = r.info(&copy_spec).unwrap();
    assert!(!info.ready());
    assert!(info.files.iter().any(|f| f.name == "vocab.json" && !f.used));

    let err = r
        .resolve(&spec("./no/such/model-dir"), &mut ())
        .unwrap_err();
    assert!(err.to_string().contains("no such model directory"), "{err}");
}

#[test]
fn bart_repositories_fetch_only_their_tokenizer_files() {
    let hub = FakeHub::start();
    let weights = std::fs::read(fixture_dir("marian-tiny").join("model.safetensors")).unwrap();
    let base = |extra: Vec<(&str, &str)>| {
        let mut files = vec![
            (
                "config.json".to_string(),
                br#"{"model_type": "bart"}"#.to_vec(),
            ),
            ("model.safetensors".to_string(), weights.clone()),
            ("pytorch_model.bin".to_string(), b"never fetched".to_vec()),
            ("vocab.json".to_string(), br#"{"a": 0, "b": 1}"#.to_vec()),
            ("merges.txt".to_string(), b"#version: 0.2\na b\n".to_vec()),
        ];
        files.extend(
            extra
                .into_iter()
                .map(|(n, d)| (n.to_string(), d.as_bytes().to_vec())),
        );
        FakeRepo::new().commit(MAIN, files).branch("main", MAIN)
    };
    hub.add_repo("test/bart-bpe", base(vec![]));
    hub.add_repo(
        "test/bart-json",
        base(vec![("tokenizer.json", r#"{"version": "1.0"}"#)]),
    );
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());

    let files = r.resolve(&spec("test/bart-bpe"), &mut ()).unwrap();
    assert_eq!(files.architecture, Architecture::Bart);
    assert!(matches!(
        files.tokenizer,
        TokenizerFiles::VocabMerges { .. }
    ));
    assert_eq!(files.weight_format, WeightFormat::Safetensors);

    hub.clear_requests();
    let files = r.resolve(&spec("test/bart-json"), &mut ()).unwrap();
    assert!(matches!(
        files.tokenizer,
        TokenizerFiles::TokenizerJson { .. }
    ));
    let mut downloaded = files.provenance.downloaded.clone();
    downloaded.sort();
    assert_eq!(
        downloaded,
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    assert_eq!(hub.downloads_of("pytorch_model.bin"), 0);
}

#[test]
fn a_failed_transfer_is_retried_within_one_call() {
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    hub.truncate_times("pytorch_model.bin", Truncation::CloseEarly(300_000), 1);
    let cache = tempfile::tempdir().unwrap();
    let r = Resolver::new(
        settings(&hub.endpoint(), cache.path()).with_retries(1),
        Catalogue::builtin().unwrap(),
    );
    let mut progress = Recorder::default();
    let files = r.resolve(&spec(OPUS), &mut progress).unwrap();
    let size = fixture_len("pytorch_model.bin");
    assert_eq!(std::fs::metadata(&files.weights).unwrap().len(), size);
    assert_eq!(hub.downloads_of("pytorch_model.bin"), 2, "one retry");
    // One bar for the file, filled exactly once despite the retry.
    let bars: Vec<_> = progress
        .started
        .iter()
        .filter(|(f, _)| f == "pytorch_model.bin")
        .collect();
    assert_eq!(bars.len(), 1);
    assert_eq!(progress.advanced["pytorch_model.bin"], size);
}

#[test]
fn deleted_blobs_are_fetched_again() {
    // The snapshot links dangle; offline that is a missing file, online a download.
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());
    let first = r.resolve(&spec(OPUS), &mut ()).unwrap();
    std::fs::remove_dir_all(repo_folder(cache.path(), OPUS).join("blobs")).unwrap();

    let offline = r.clone().with_offline(true).resolve(&spec(OPUS), &mut ());
    assert!(
        matches!(offline, Err(Error::MissingFile { .. })),
        "{offline:?}"
    );
    let again = r.resolve(&spec(OPUS), &mut ()).unwrap();
    assert_eq!(again.provenance.origin, Origin::Download);
    assert_eq!(again.provenance.downloaded.len(), 7);
    assert_eq!(again.paths(), first.paths());
}

#[test]
fn separate_vocabularies_fetch_the_target_vocabulary() {
    // marian-tiny-relu: tokenizer_config.json says separate_vocabs; its .bin is the legacy format.
    let hub = FakeHub::start();
    hub.add_repo(
        "test/relu",
        FakeRepo::new()
            .commit(
                MAIN,
                fixture_files_of("marian-tiny-relu", &["model.safetensors"]),
            )
            .branch("main", MAIN),
    );
    let cache = tempfile::tempdir().unwrap();
    let files = resolver(&hub.endpoint(), cache.path())
        .resolve(&spec("test/relu"), &mut ())
        .unwrap();
    assert!(matches!(
        &files.tokenizer,
        TokenizerFiles::SentencePiece { target_vocab: Some(p), .. } if p.ends_with("target_vocab.json")
    ));
    assert_eq!(files.weight_format, WeightFormat::PyTorch);
    assert!(files
        .provenance
        .downloaded
        .contains(&"target_vocab.json".to_string()));
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `data` with the byte in the middle flipped, as [`FakeHub::corrupt_times`] sends it.
fn flipped(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mid = out.len() / 2;
    out[mid] ^= 0x01;
    out
}

#[test]
fn a_download_with_a_flipped_byte_is_fetched_again_then_refused() {
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    // One flipped byte: the size and the framing are right, only the hash tells. An LFS file
    // (SHA-256) and a plain one (git blob SHA-1), each damaged on its first transfer only.
    hub.corrupt_times("pytorch_model.bin", Some(1));
    hub.corrupt_times("vocab.json", Some(1));
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());
    let files = r.resolve(&spec(OPUS), &mut ()).unwrap();
    assert_eq!(hub.downloads_of("pytorch_model.bin"), 2);
    assert_eq!(hub.downloads_of("vocab.json"), 2);
    assert_eq!(hub.downloads_of("config.json"), 1);
    let intact = std::fs::read(fixture_dir("marian-tiny").join("pytorch_model.bin")).unwrap();
    assert_eq!(std::fs::read(&files.weights).unwrap(), intact);
    let TokenizerFiles::SentencePiece { vocab, .. } = &files.tokenizer else {
        panic!("{:?}", files.tokenizer)
    };
    assert_eq!(
        std::fs::read(vocab).unwrap(),
        std::fs::read(fixture_dir("marian-tiny").join("vocab.json")).unwrap()
    );
    let mut downloaded = files.provenance.downloaded.clone();
    downloaded.sort();
    downloaded.dedup();
    assert_eq!(downloaded.len(), 7, "each file listed once");

    // Damaged every time: after the second try, an error naming the file and both hashes, and
    // no damaged copy left in the cache.
    hub.corrupt_times("pytorch_model.bin", None);
    hub.clear_requests();
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());
    let err = r.resolve(&spec(OPUS), &mut ()).unwrap_err();
    assert!(
        matches!(&err, Error::Hub { file, .. } if file == "pytorch_model.bin"),
        "{err}"
    );
    assert_eq!(hub.downloads_of("pytorch_model.bin"), 2);
    let text = err.to_string();
    let expected = sha256_hex(&intact);
    let actual = sha256_hex(&flipped(&intact));
    assert!(
        text.contains("pytorch_model.bin")
            && text.contains("corrupt")
            && text.contains(&format!("SHA-256 is {actual}"))
            && text.contains(&format!("the Hub gives {expected}")),
        "{text}"
    );
    let folder = repo_folder(cache.path(), OPUS);
    assert!(!folder
        .join("snapshots")
        .join(MAIN)
        .join("pytorch_model.bin")
        .exists());
    assert!(!folder.join("blobs").join(&expected).exists());
}

#[test]
fn a_damaged_cached_blob_is_reported_by_info_and_replaced_by_fetch() {
    let hub = FakeHub::start();
    hub.add_repo(OPUS, opus_repo());
    let cache = tempfile::tempdir().unwrap();
    let r = resolver(&hub.endpoint(), cache.path());
    let files = r.resolve(&ModelSpec::default(), &mut ()).unwrap();
    let info = r.info(&ModelSpec::default()).unwrap();
    assert!(info.ready(), "{:?}", info.problem);
    for f in &info.files {
        let kind = if f.name == "pytorch_model.bin" {
            HashKind::Sha256
        } else {
            HashKind::GitSha1
        };
        assert_eq!(f.integrity, Integrity::Verified(kind), "{}", f.name);
    }

    // One flipped byte in the blob behind the snapshot link: the cheap checks pass (loading
    // from the cache does not hash 300 MB every time), the hash does not.
    let intact = std::fs::read(&files.weights).unwrap();
    std::fs::write(&files.weights, flipped(&intact)).unwrap();
    r.resolve(&ModelSpec::default(), &mut ()).unwrap();
    let info = r.info(&ModelSpec::default()).unwrap();
    assert!(!info.ready());
    let problem = info.problem.as_deref().unwrap();
    assert!(
        problem.contains("pytorch_model.bin is damaged")
            && problem.contains(&format!("SHA-256 is {}", sha256_hex(&flipped(&intact))))
            && problem.contains(&format!("not {}", sha256_hex(&intact)))
            && problem.contains("run `tolk models fetch opus-mt-nl-en` to download it again"),
        "{problem}"
    );
    let bin = info
        .files
        .iter()
        .find(|f| f.name == "pytorch_model.bin")
        .unwrap();
    assert_eq!(
        bin.integrity,
        Integrity::Mismatch {
            kind: HashKind::Sha256,
            expected: sha256_hex(&intact),
            actual: sha256_hex(&flipped(&intact)),
        }
    );

    // `fetch` hashes what is cached and downloads only the damaged file again.
    hub.clear_requests();
    let fetched = r
        .fetch(&ModelSpec::default(), &FetchOptions::default(), &mut ())
        .unwrap();
    assert_eq!(fetched.provenance.downloaded, ["pytorch_model.bin"]);
    assert_eq!(std::fs::read(&fetched.weights).unwrap(), intact);
    assert!(r.info(&ModelSpec::default()).unwrap().ready());

    // A plain (non-LFS) file is checked by its git blob hash.
    let TokenizerFiles::SentencePiece { vocab, .. } = &files.tokenizer else {
        panic!("{:?}", files.tokenizer)
    };
    let mut text = std::fs::read(vocab).unwrap();
    let at = text.iter().rposition(|b| b.is_ascii_lowercase()).unwrap();
    text[at] = if text[at] == b'q' { b'x' } else { b'q' };
    std::fs::write(vocab, &text).unwrap();
    let info = r.info(&ModelSpec::default()).unwrap();
    let entry = info.files.iter().find(|f| f.name == "vocab.json").unwrap();
    assert!(
        matches!(
            &entry.integrity,
            Integrity::Mismatch {
                kind: HashKind::GitSha1,
                ..
            }
        ),
        "{:?}",
        entry.integrity
    );
    assert!(
        info.problem
            .as_deref()
            .unwrap()
            .contains("vocab.json is damaged"),
        "{:?}",
        info.problem
    );
}

#[test]
fn the_source_language_comes_from_the_manifest_the_tokenizer_config_or_the_name() {
    let hub = FakeHub::start();
    // A repository named like an OPUS-MT model whose tokenizer_config.json says nothing.
    let mut files = fixture_files(&["tokenizer_config.json"]);
    files.push((
        "tokenizer_config.json".to_string(),
        br#"{"separate_vocabs": false}"#.to_vec(),
    ));
    hub.add_repo(
        "test/opus-mt-zh-en",
        FakeRepo::new().commit(MAIN, files).branch("main", MAIN),
    );
    // The fixture's own tokenizer_config.json says nl.
    hub.add_repo(
        "test/tiny",
        FakeRepo::new()
            .commit(MAIN, fixture_files(&[]))
            .branch("main", MAIN),
    );
    let user = tempfile::tempdir().unwrap();
    std::fs::write(
        user.path().join("tiny-ja.toml"),
        "name = \"tiny-ja\"\nrepo = \"test/opus-mt-zh-en\"\nrevision = \"main\"\n\
         task = \"translation\"\nsource_language = \"jpn\"\ntarget_language = \"en\"\n\
         license = \"MIT\"\narchitecture = \"marian\"\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let r = Resolver::new(
        settings(&hub.endpoint(), cache.path()),
        Catalogue::load(Some(user.path())).unwrap(),
    );
    let language = |spec_text: &str| {
        r.resolve(&spec(spec_text), &mut ())
            .unwrap()
            .source_language
    };
    assert_eq!(language("test/opus-mt-zh-en").as_deref(), Some("zh"));
    assert_eq!(language("test/tiny").as_deref(), Some("nl"));
    // The target language, found the same ways.
    let target = |spec_text: &str| {
        r.resolve(&spec(spec_text), &mut ())
            .unwrap()
            .target_language
    };
    assert_eq!(target("test/opus-mt-zh-en").as_deref(), Some("en"));
    assert_eq!(target("test/tiny").as_deref(), Some("en"));
    // The manifest says it outright, over the repository's name.
    assert_eq!(language("tiny-ja").as_deref(), Some("ja"));
    let fetched = r
        .fetch(&spec("tiny-ja"), &FetchOptions::default(), &mut ())
        .unwrap();
    assert_eq!(fetched.source_language.as_deref(), Some("ja"));
    // A local directory: its tokenizer_config.json.
    let dir = fixture_dir("marian-tiny");
    let files = ModelFiles::from_dir(&dir).unwrap();
    assert_eq!(files.source_language.as_deref(), Some("nl"));
    assert_eq!(files.target_language.as_deref(), Some("en"));
}
