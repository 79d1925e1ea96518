//! A model on disk: which files an architecture needs, where they are, and cheap integrity checks
//! that turn a truncated or corrupt file into an error naming the file and the fix.
//!
//! The deep checks (tensor shapes, tokenizer contents) belong to the readers of those files; they
//! attach the same "how to fix it" hint through [`ModelFiles::explain`].

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::spec::ModelSpec;
use crate::config::Architecture;
use crate::error::{Error, Result};

/// The tokenizer files of a model; which ones depends on the architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerFiles {
    /// Marian (opus-mt): two SentencePiece models and the id vocabulary.
    SentencePiece {
        /// `source.spm`: segments the source text.
        source_spm: PathBuf,
        /// `target.spm`: turns generated pieces back into text.
        target_spm: PathBuf,
        /// `vocab.json`: piece → id (the source side when vocabularies are separate).
        vocab: PathBuf,
        /// `target_vocab.json`, when `tokenizer_config.json` says `separate_vocabs`.
        target_vocab: Option<PathBuf>,
    },
    /// A Hugging Face `tokenizers` file (BART family, NLLB).
    TokenizerJson {
        /// `tokenizer.json`.
        tokenizer_json: PathBuf,
    },
    /// M2M100 without `tokenizer.json`: one SentencePiece model whose pieces get their ids from
    /// a vocabulary, language tokens after it.
    SentencePieceVocab {
        /// `sentencepiece.bpe.model`.
        spm: PathBuf,
        /// `vocab.json`: piece → id.
        vocab: PathBuf,
    },
    /// BART family with the GPT-2 style byte-level BPE pair.
    VocabMerges {
        /// `vocab.json`: token → id.
        vocab: PathBuf,
        /// `merges.txt`: BPE merge ranks.
        merges: PathBuf,
    },
}

/// How the weight file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// `model.safetensors`.
    Safetensors,
    /// `pytorch_model.bin` (a `torch.save` zip archive, or the legacy pickle format).
    PyTorch,
}

impl WeightFormat {
    /// The file name the Hub uses for this format.
    pub fn file_name(self) -> &'static str {
        match self {
            WeightFormat::Safetensors => SAFETENSORS,
            WeightFormat::PyTorch => PYTORCH,
        }
    }
}

/// Where a model's files came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A local directory the user named.
    Directory,
    /// The Hugging Face cache, with nothing downloaded in this call.
    Cache,
    /// The Hugging Face cache, after downloading at least one file in this call.
    Download,
}

/// What was asked for and what was found: enough to reproduce the model and to tell the user how
/// to repair it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// What the user asked for (catalogue name, Hub id or directory).
    pub spec: ModelSpec,
    /// Where the files are.
    pub origin: Origin,
    /// Hub repository id (none for a local directory).
    pub repo: Option<String>,
    /// The revision asked for (a catalogue entry's pinned revision unless overridden).
    pub revision: Option<String>,
    /// The commit the revision resolved to.
    pub commit: Option<String>,
    /// Files downloaded by this call, in order.
    pub downloaded: Vec<String>,
}

/// Every file a model needs, as local paths, checked to be present and plausibly intact.
///
/// Everything after [`crate::source::Resolver::resolve`] works from these paths alone, offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The directory holding the files (a cache snapshot or the user's directory).
    pub dir: PathBuf,
    /// The model family, from `config.json`'s `model_type`.
    pub architecture: Architecture,
    /// `config.json`.
    pub config: PathBuf,
    /// `generation_config.json`, if the model has one.
    pub generation_config: Option<PathBuf>,
    /// `tokenizer_config.json`, if the model has one.
    pub tokenizer_config: Option<PathBuf>,
    /// The tokenizer files.
    pub tokenizer: TokenizerFiles,
    /// The weight file.
    pub weights: PathBuf,
    /// The weight file's format.
    pub weight_format: WeightFormat,
    /// Where the files came from.
    pub provenance: Provenance,
    /// The language the model reads (a code such as `nl` or `zh`), if known: from the catalogue
    /// manifest's `source_language`, else `tokenizer_config.json`'s `source_lang`, else the Hub
    /// repository's name (`opus-mt-zh-en`), else the directory's name. A pipeline segments its
    /// input by the rules of this language ([`crate::segment::Segmenter::language`]).
    pub source_language: Option<String>,
    /// The language the model writes, if known, found as [`ModelFiles::source_language`] is
    /// (`target_lang`, the OPUS-MT name's second code, the catalogue's `target_language`).
    /// Translated office files and books are tagged with it.
    pub target_language: Option<String>,
}

pub(crate) const CONFIG: &str = "config.json";
pub(crate) const GENERATION_CONFIG: &str = "generation_config.json";
pub(crate) const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
pub(crate) const SAFETENSORS: &str = "model.safetensors";
pub(crate) const PYTORCH: &str = "pytorch_model.bin";
const SOURCE_SPM: &str = "source.spm";
const TARGET_SPM: &str = "target.spm";
const VOCAB: &str = "vocab.json";
const TARGET_VOCAB: &str = "target_vocab.json";
const TOKENIZER_JSON: &str = "tokenizer.json";
const MERGES: &str = "merges.txt";
const SPM_BPE: &str = "sentencepiece.bpe.model";

impl ModelFiles {
    /// Reads a model from a local directory (the Hugging Face layout: `config.json` and the files
    /// its architecture needs). Nothing is downloaded.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<ModelFiles> {
        let dir = dir.as_ref();
        let provenance = Provenance {
            spec: ModelSpec::Dir(dir.to_path_buf()),
            origin: Origin::Directory,
            repo: None,
            revision: None,
            commit: None,
            downloaded: Vec::new(),
        };
        scan(dir, provenance, &Fix::directory(dir))
    }

    /// What the user should do when `path` (one of this model's files) turns out to be damaged:
    /// re-fetch it (cache) or replace it (directory). Readers of the files add this to their errors;
    /// see [`ModelFiles::explain`].
    pub fn hint_for(&self, path: &Path) -> String {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        self.fix().damaged(&file)
    }

    /// Attaches [`ModelFiles::hint_for`] to an error about one of this model's files; parse and
    /// tokenizer errors become [`Error::ModelFile`] so they can carry it. Other errors pass
    /// through unchanged.
    pub fn explain(&self, err: Error) -> Error {
        match err {
            Error::ModelFile { ref path, .. } => {
                let hint = self.hint_for(path);
                err.with_hint(hint)
            }
            Error::Parse {
                path,
                format,
                message,
            } => {
                let hint = self.hint_for(&path);
                Error::model_file(path, format!("not valid {format}: {message}")).with_hint(hint)
            }
            Error::Tokenizer { path, message } => {
                let hint = self.hint_for(&path);
                Error::model_file(path, format!("tokenizer: {message}")).with_hint(hint)
            }
            other => other,
        }
    }

    /// Every file of the model, config first, weights last.
    pub fn paths(&self) -> Vec<&Path> {
        let mut out = vec![self.config.as_path()];
        out.extend(self.generation_config.as_deref());
        out.extend(self.tokenizer_config.as_deref());
        match &self.tokenizer {
            TokenizerFiles::SentencePiece {
                source_spm,
                target_spm,
                vocab,
                target_vocab,
            } => {
                out.extend([source_spm.as_path(), target_spm, vocab]);
                out.extend(target_vocab.as_deref());
            }
            TokenizerFiles::TokenizerJson { tokenizer_json } => out.push(tokenizer_json),
            TokenizerFiles::VocabMerges { vocab, merges } => out.extend([vocab.as_path(), merges]),
            TokenizerFiles::SentencePieceVocab { spm, vocab } => out.extend([spm.as_path(), vocab]),
        }
        out.push(&self.weights);
        out
    }

    fn fix(&self) -> Fix {
        match self.provenance.origin {
            Origin::Directory => Fix::directory(&self.dir),
            Origin::Cache | Origin::Download => Fix::cache(&self.provenance.spec, &self.dir),
        }
    }
}

/// How to repair a model's files, phrased for where they live.
#[derive(Debug, Clone)]
pub(crate) enum Fix {
    Directory { dir: PathBuf },
    Cache { fetch: String, snapshot: PathBuf },
}

impl Fix {
    pub(crate) fn directory(dir: &Path) -> Fix {
        Fix::Directory {
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn cache(spec: &ModelSpec, snapshot: &Path) -> Fix {
        Fix::Cache {
            fetch: fetch_command(spec),
            snapshot: snapshot.to_path_buf(),
        }
    }

    /// The hint for a file that is there but unusable.
    pub(crate) fn damaged(&self, file: &str) -> String {
        match self {
            Fix::Directory { dir } => format!(
                "replace {file} in {} with an intact copy of the model's file",
                dir.display()
            ),
            Fix::Cache { fetch, snapshot } => format!(
                "the cached copy is damaged: run `{fetch} --force` to download it again, or delete {} and run again",
                snapshot.display()
            ),
        }
    }

    /// The hint for a file that is not there (offline, for the cache).
    pub(crate) fn missing(&self, file: &str) -> String {
        match self {
            Fix::Directory { dir } => format!(
                "copy the model's {file} into {}, or name a Hub model instead of a directory",
                dir.display()
            ),
            Fix::Cache { fetch, .. } => {
                format!("run `{fetch}` with network access to complete the cached copy")
            }
        }
    }
}

/// `tolk models fetch X` for the model the user named.
pub(crate) fn fetch_command(spec: &ModelSpec) -> String {
    format!("tolk models fetch {spec}")
}

/// The files of a model besides `config.json` and `tokenizer_config.json`, in fetch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Tokenizer files that must exist.
    pub required: Vec<&'static str>,
    /// Files used when present.
    pub optional: Vec<&'static str>,
    /// The weight file.
    pub weights: &'static str,
}

/// What a model of `architecture` needs, given which files its repository or directory has.
/// `Err` names what is missing (`a or b`) when no acceptable choice exists.
pub(crate) fn plan(
    architecture: Architecture,
    separate_vocabs: bool,
    has: &dyn Fn(&str) -> bool,
) -> std::result::Result<Plan, String> {
    let mut required = Vec::new();
    match architecture {
        Architecture::Marian => {
            required.extend([SOURCE_SPM, TARGET_SPM, VOCAB]);
            if separate_vocabs {
                required.push(TARGET_VOCAB);
            }
        }
        Architecture::Bart => {
            if has(TOKENIZER_JSON) {
                required.push(TOKENIZER_JSON);
            } else if has(VOCAB) && has(MERGES) {
                required.extend([VOCAB, MERGES]);
            } else {
                return Err(format!("{TOKENIZER_JSON} or {VOCAB} and {MERGES}"));
            }
        }
        Architecture::M2m100 => {
            if has(TOKENIZER_JSON) {
                required.push(TOKENIZER_JSON);
            } else if has(SPM_BPE) && has(VOCAB) {
                required.extend([SPM_BPE, VOCAB]);
            } else {
                return Err(format!("{TOKENIZER_JSON} or {SPM_BPE} and {VOCAB}"));
            }
        }
    }
    let weights = if has(SAFETENSORS) {
        SAFETENSORS
    } else if has(PYTORCH) {
        PYTORCH
    } else {
        return Err(format!("{SAFETENSORS} or {PYTORCH}"));
    };
    Ok(Plan {
        required,
        optional: vec![GENERATION_CONFIG],
        weights,
    })
}

/// The architecture named by a parsed `config.json`.
pub(crate) fn architecture_of(path: &Path, config: &Value) -> Result<Architecture> {
    let model_type = config.get("model_type").and_then(Value::as_str);
    match model_type {
        Some("marian") => Ok(Architecture::Marian),
        Some("bart") => Ok(Architecture::Bart),
        Some("m2m_100") => Ok(Architecture::M2m100),
        Some(other) => Err(Error::config(
            path,
            "model_type",
            format!("`{other}` is not supported; tolk runs `marian` (opus-mt), `m2m_100` (M2M100, NLLB-200) and `bart` (BART, DistilBART) models"),
        )),
        None => Err(Error::config(
            path,
            "model_type",
            "missing: cannot tell which architecture this is",
        )),
    }
}

/// `separate_vocabs` from a parsed `tokenizer_config.json` (absent means shared).
pub(crate) fn separate_vocabs(tokenizer_config: Option<&Value>) -> bool {
    tokenizer_config
        .and_then(|v| v.get("separate_vocabs"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Reads and checks a JSON file of a model, with the fix hint on failure.
pub(crate) fn read_json(path: &Path, fix: &Fix) -> Result<Value> {
    let bytes = read_nonempty(path, fix)?;
    serde_json::from_slice::<Value>(&bytes)
        .map_err(|e| format!("not valid JSON ({e}); a cut-off download looks like this"))
        .and_then(|v| {
            if v.is_object() {
                Ok(v)
            } else {
                Err("not a JSON object".to_string())
            }
        })
        .map_err(|msg| damaged(path, msg, fix))
}

/// Checks the model in `dir` and lists its files.
pub(crate) fn scan(dir: &Path, provenance: Provenance, fix: &Fix) -> Result<ModelFiles> {
    let config = dir.join(CONFIG);
    let has = |name: &str| dir.join(name).is_file();
    if !has(CONFIG) {
        return Err(missing(dir, CONFIG, fix));
    }
    let config_value = read_json(&config, fix)?;
    let architecture = architecture_of(&config, &config_value)?;
    let tokenizer_config = has(TOKENIZER_CONFIG).then(|| dir.join(TOKENIZER_CONFIG));
    let tokenizer_config_value = match &tokenizer_config {
        Some(path) => Some(read_json(path, fix)?),
        None => None,
    };
    let separate = separate_vocabs(tokenizer_config_value.as_ref());
    let plan = plan(architecture, separate, &has).map_err(|what| missing(dir, &what, fix))?;
    for name in &plan.required {
        if !has(name) {
            return Err(missing(dir, name, fix));
        }
    }
    let generation_config = has(GENERATION_CONFIG).then(|| dir.join(GENERATION_CONFIG));
    for path in plan
        .required
        .iter()
        .chain([&plan.weights])
        .map(|n| dir.join(n))
        .chain(generation_config.clone())
    {
        check_file(&path, fix)?;
    }

    let path = |name: &str| dir.join(name);
    let tokenizer = match architecture {
        Architecture::Marian => TokenizerFiles::SentencePiece {
            source_spm: path(SOURCE_SPM),
            target_spm: path(TARGET_SPM),
            vocab: path(VOCAB),
            target_vocab: separate.then(|| path(TARGET_VOCAB)),
        },
        Architecture::Bart | Architecture::M2m100 if plan.required.contains(&TOKENIZER_JSON) => {
            TokenizerFiles::TokenizerJson {
                tokenizer_json: path(TOKENIZER_JSON),
            }
        }
        Architecture::M2m100 => TokenizerFiles::SentencePieceVocab {
            spm: path(SPM_BPE),
            vocab: path(VOCAB),
        },
        Architecture::Bart => TokenizerFiles::VocabMerges {
            vocab: path(VOCAB),
            merges: path(MERGES),
        },
    };
    let weight_format = if plan.weights == SAFETENSORS {
        WeightFormat::Safetensors
    } else {
        WeightFormat::PyTorch
    };
    let source_language = model_language(tokenizer_config_value.as_ref(), &provenance, dir, false);
    let target_language = model_language(tokenizer_config_value.as_ref(), &provenance, dir, true);
    Ok(ModelFiles {
        dir: dir.to_path_buf(),
        architecture,
        config,
        generation_config,
        tokenizer_config,
        tokenizer,
        weights: path(weight_format.file_name()),
        weight_format,
        provenance,
        source_language,
        target_language,
    })
}

/// The model's source language (`target: false`) or target language as far as its files tell:
/// `tokenizer_config.json`'s `source_lang` or `target_lang` (Marian tokenizers have them), else
/// an OPUS-MT name (`opus-mt-zh-en`) of the Hub repository or, for a local directory, of the
/// directory. The catalogue's manifest, which says it outright, takes precedence (see
/// [`crate::source::Resolver::resolve`]).
fn model_language(
    tokenizer_config: Option<&Value>,
    provenance: &Provenance,
    dir: &Path,
    target: bool,
) -> Option<String> {
    use crate::segment::Language;
    let code = |s: &str| Language::new(s).ok().map(|l| l.code().to_string());
    let named = |s: &str| {
        let found = if target {
            Language::target_from_model_name(s)
        } else {
            Language::from_model_name(s)
        };
        found.map(|l| l.code().to_string())
    };
    let key = if target { "target_lang" } else { "source_lang" };
    tokenizer_config
        .and_then(|v| v.get(key))
        .and_then(Value::as_str)
        .and_then(code)
        .or_else(|| provenance.repo.as_deref().and_then(named))
        .or_else(|| {
            (provenance.origin == Origin::Directory)
                .then(|| named(&dir.to_string_lossy()))
                .flatten()
        })
}

pub(crate) fn missing(dir: &Path, file: &str, fix: &Fix) -> Error {
    Error::MissingFile {
        dir: dir.to_path_buf(),
        file: file.to_string(),
        hint: fix.missing(file),
    }
}

fn damaged(path: &Path, message: impl Into<String>, fix: &Fix) -> Error {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Error::model_file(path, message).with_hint(fix.damaged(&file))
}

fn read_nonempty(path: &Path, fix: &Fix) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).map_err(|e| damaged(path, format!("cannot be read: {e}"), fix))?;
    if bytes.is_empty() {
        return Err(damaged(path, "is empty (0 bytes)", fix));
    }
    Ok(bytes)
}

/// The cheap check for one file, chosen by its name.
pub(crate) fn check_file(path: &Path, fix: &Fix) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let problem = if name.ends_with(".json") {
        return read_json(path, fix).map(|_| ());
    } else if name.ends_with(".spm") || name.ends_with(".model") {
        check_sentencepiece(&read_nonempty(path, fix)?)
    } else if name.ends_with(".safetensors") {
        check_safetensors(path)
    } else if name.ends_with(".bin") {
        check_pytorch(path)
    } else {
        let bytes = read_nonempty(path, fix)?;
        std::str::from_utf8(&bytes)
            .map(|_| ())
            .map_err(|e| format!("not UTF-8 text ({e})"))
    };
    problem.map_err(|msg| damaged(path, msg, fix))
}

/// A SentencePiece model is a protobuf `ModelProto` whose first field is a piece (field 1,
/// length-delimited: byte 0x0A). Walking the top-level fields finds a file cut short anywhere.
fn check_sentencepiece(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.first() != Some(&0x0A) {
        return Err(
            "does not start like a SentencePiece model (a protobuf whose first field is a piece)"
                .into(),
        );
    }
    crate::proto::check_message(bytes, "protobuf")
        .map_err(|e| format!("truncated or corrupt: {}", e.0))
}

/// The safetensors layout: 8-byte little-endian header length, a JSON header, then tensor data
/// that must end exactly at the end of the file.
fn check_safetensors(path: &Path) -> std::result::Result<(), String> {
    let mut file = File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    if len < 8 {
        return Err(format!(
            "only {len} bytes: too short for a safetensors file"
        ));
    }
    let mut head = [0u8; 8];
    file.read_exact(&mut head)
        .map_err(|e| format!("cannot be read: {e}"))?;
    let header_len = u64::from_le_bytes(head);
    if header_len > len - 8 {
        return Err(format!(
            "truncated: the header claims {header_len} bytes but only {} follow",
            len - 8
        ));
    }
    // The safetensors format itself caps headers at 100 MB.
    if header_len > 100_000_000 {
        return Err(format!("header length {header_len} is not plausible"));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| format!("cannot be read: {e}"))?;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&header)
        .map_err(|e| format!("the safetensors header is not valid JSON ({e})"))?;
    let mut data_end = 0u64;
    for (name, entry) in &header {
        if name == "__metadata__" {
            continue;
        }
        let end = entry
            .get("data_offsets")
            .and_then(|o| o.get(1))
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("tensor `{name}` has no data_offsets in the header"))?;
        data_end = data_end.max(end);
    }
    let data_len = len - 8 - header_len;
    if data_end > data_len {
        return Err(format!(
            "truncated: the tensors need {data_end} bytes of data but the file holds {data_len}"
        ));
    }
    if data_end < data_len {
        return Err(format!(
            "{} stray bytes after the last tensor",
            data_len - data_end
        ));
    }
    Ok(())
}

/// `torch.save` writes a zip archive (since PyTorch 1.6) whose end-of-central-directory record
/// sits in the last 64 KiB; a cut-off download loses it. The legacy pickle format cannot be
/// checked cheaply and is left to the reader.
fn check_pytorch(path: &Path) -> std::result::Result<(), String> {
    let mut file = File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    let mut magic = [0u8; 4];
    if len < 4 || file.read_exact(&mut magic).is_err() {
        return Err(format!(
            "only {len} bytes: too short for a PyTorch checkpoint"
        ));
    }
    if magic[0] == 0x80 {
        return Ok(());
    }
    if &magic != b"PK\x03\x04" {
        return Err("neither a zip archive nor a pickle: not a PyTorch checkpoint".into());
    }
    let tail_len = len.min(65_557);
    let mut tail = vec![0u8; tail_len as usize];
    file.seek(SeekFrom::Start(len - tail_len))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| format!("cannot be read: {e}"))?;
    let eocd = tail
        .windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .ok_or("truncated: the zip archive has no end record")?;
    let field = |at: usize| {
        tail.get(eocd + at..eocd + at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (size, offset) = (field(12), field(16));
    if let (Some(size), Some(offset)) = (size, offset) {
        // 0xFFFFFFFF marks ZIP64, whose real values live elsewhere.
        let eocd_at = len - tail_len + eocd as u64;
        if size != u32::MAX && offset != u32::MAX && u64::from(offset) + u64::from(size) > eocd_at {
            return Err("truncated: the zip directory points past the end record".into());
        }
    } else {
        return Err("truncated: the zip end record is cut off".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/marian-tiny")
            .join(name)
    }

    fn copy_fixture(to: &Path) {
        for entry in std::fs::read_dir(fixture("")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }

    fn truncate(path: &Path, keep: u64) {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.set_len(keep).unwrap();
    }

    #[test]
    fn fixture_dir_resolves_with_safetensors() {
        let files = ModelFiles::from_dir(fixture("")).unwrap();
        assert_eq!(files.architecture, Architecture::Marian);
        assert_eq!(files.weight_format, WeightFormat::Safetensors);
        assert!(files.generation_config.is_some());
        assert!(matches!(
            files.tokenizer,
            TokenizerFiles::SentencePiece {
                target_vocab: None,
                ..
            }
        ));
        assert_eq!(files.paths().len(), 7);
    }

    #[test]
    fn separate_vocabulary_fixture_resolves() {
        let dir = fixture("").with_file_name("marian-tiny-relu");
        let files = ModelFiles::from_dir(&dir).unwrap();
        assert_eq!(
            files.tokenizer,
            TokenizerFiles::SentencePiece {
                source_spm: dir.join("source.spm"),
                target_spm: dir.join("target.spm"),
                vocab: dir.join("vocab.json"),
                target_vocab: Some(dir.join("target_vocab.json")),
            }
        );
        // Its .bin is in the legacy (pickle) format, which passes the cheap check.
        check_file(&dir.join(PYTORCH), &Fix::directory(&dir)).unwrap();
    }

    #[test]
    fn intact_fixture_files_pass() {
        for name in [
            "source.spm",
            "target.spm",
            "model.safetensors",
            "pytorch_model.bin",
        ] {
            check_file(&fixture(name), &Fix::directory(Path::new("."))).unwrap();
        }
    }

    #[test]
    fn bin_is_used_without_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        copy_fixture(dir.path());
        std::fs::remove_file(dir.path().join(SAFETENSORS)).unwrap();
        let files = ModelFiles::from_dir(dir.path()).unwrap();
        assert_eq!(files.weight_format, WeightFormat::PyTorch);
        assert_eq!(files.weights, dir.path().join(PYTORCH));
    }

    #[test]
    fn truncations_are_caught() {
        let fix = Fix::directory(Path::new("/m"));
        for (name, keep) in [
            ("model.safetensors", 4),
            ("model.safetensors", 5000),
            ("model.safetensors", 900_000),
            ("pytorch_model.bin", 1_000_000),
            ("source.spm", 100_000),
            ("vocab.json", 1000),
            ("config.json", 0),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            std::fs::copy(fixture(name), &path).unwrap();
            truncate(&path, keep);
            let err = check_file(&path, &fix).unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
            assert!(err.contains("replace"), "{name}: {err}");
        }
    }

    #[test]
    fn wrong_content_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let fix = Fix::directory(dir.path());
        for name in ["source.spm", "pytorch_model.bin", "model.safetensors"] {
            let path = dir.path().join(name);
            std::fs::write(&path, "<html>Not found</html>").unwrap();
            let err = check_file(&path, &fix).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
        let path = dir.path().join("model.safetensors");
        let mut bytes = std::fs::read(fixture("model.safetensors")).unwrap();
        bytes.extend_from_slice(b"junk");
        std::fs::write(&path, bytes).unwrap();
        let err = check_file(&path, &fix).unwrap_err().to_string();
        assert!(err.contains("stray bytes"), "{err}");
    }

    #[test]
    fn missing_files_name_the_file_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        copy_fixture(dir.path());
        std::fs::remove_file(dir.path().join("target.spm")).unwrap();
        let err = ModelFiles::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, Error::MissingFile { ref file, .. } if file == "target.spm"));
        let text = err.to_string();
        assert!(text.contains(&dir.path().display().to_string()), "{text}");

        for name in [SAFETENSORS, PYTORCH] {
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
        std::fs::copy(fixture("target.spm"), dir.path().join("target.spm")).unwrap();
        let text = ModelFiles::from_dir(dir.path()).unwrap_err().to_string();
        assert!(
            text.contains("model.safetensors or pytorch_model.bin"),
            "{text}"
        );
    }

    #[test]
    fn separate_vocabs_needs_target_vocab() {
        let dir = tempfile::tempdir().unwrap();
        copy_fixture(dir.path());
        std::fs::write(
            dir.path().join(TOKENIZER_CONFIG),
            r#"{"separate_vocabs": true}"#,
        )
        .unwrap();
        let err = ModelFiles::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, Error::MissingFile { ref file, .. } if file == TARGET_VOCAB));
        std::fs::copy(fixture("vocab.json"), dir.path().join(TARGET_VOCAB)).unwrap();
        let files = ModelFiles::from_dir(dir.path()).unwrap();
        assert!(matches!(
            files.tokenizer,
            TokenizerFiles::SentencePiece {
                target_vocab: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn bart_plans() {
        let has = |names: &'static [&'static str]| move |n: &str| names.contains(&n);
        let p = plan(
            Architecture::Bart,
            false,
            &has(&[
                "tokenizer.json",
                "vocab.json",
                "merges.txt",
                "pytorch_model.bin",
            ]),
        )
        .unwrap();
        assert_eq!(
            (p.required, p.weights),
            (vec!["tokenizer.json"], "pytorch_model.bin")
        );
        let p = plan(
            Architecture::Bart,
            false,
            &has(&[
                "vocab.json",
                "merges.txt",
                "model.safetensors",
                "pytorch_model.bin",
            ]),
        )
        .unwrap();
        assert_eq!(
            (p.required, p.weights),
            (vec!["vocab.json", "merges.txt"], "model.safetensors")
        );
        let e = plan(
            Architecture::Bart,
            false,
            &has(&["vocab.json", "model.safetensors"]),
        )
        .unwrap_err();
        assert_eq!(e, "tokenizer.json or vocab.json and merges.txt");
    }

    #[test]
    fn unsupported_model_type() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG), r#"{"model_type": "t5"}"#).unwrap();
        let err = ModelFiles::from_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("model_type") && err.contains("t5"), "{err}");
    }

    #[test]
    fn explain_attaches_hints() {
        let files = ModelFiles::from_dir(fixture("")).unwrap();
        let err = files.explain(Error::Parse {
            path: files.config.clone(),
            format: "JSON",
            message: "eof".into(),
        });
        let text = err.to_string();
        assert!(
            text.contains("config.json") && text.contains("replace config.json"),
            "{text}"
        );
        let err = files.explain(Error::model_file(&files.weights, "shape mismatch"));
        assert!(
            err.to_string().contains("replace model.safetensors"),
            "{err}"
        );
    }
}
