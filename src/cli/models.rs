//! `tolk models list|fetch|info`: the model catalogue and the Hugging Face cache.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use tolk::source::{FetchOptions, Integrity, ModelSpec, Origin, Resolver, DEFAULT_MODEL};

use super::emit;
use super::progress::DownloadBars;
use super::Global;

/// `--format` of `models list` and `models info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InfoFormat {
    /// Aligned text.
    Text,
    /// JSON.
    Json,
}

/// The `models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// The catalogue: every known model and whether it is in the cache (no network).
    List {
        /// Output format.
        #[arg(long, short, value_enum, default_value = "text")]
        format: InfoFormat,
    },
    /// Download a model into the Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub, else
    /// ~/.cache/huggingface/hub), or check that the cached copy is complete.
    Fetch {
        /// Catalogue name, Hub repository ORG/NAME[@REVISION] or directory.
        #[arg(default_value = DEFAULT_MODEL, value_name = "NAME")]
        name: String,
        /// Git revision (branch, tag, commit).
        #[arg(long, value_name = "REV")]
        revision: Option<String>,
        /// Download every file again, even if the cached copy looks intact.
        #[arg(long)]
        force: bool,
        /// Check the cache only; never download.
        #[arg(long)]
        offline: bool,
    },
    /// What is known about a model without the network: repository, revision, commit, cache
    /// folder, files (those in use checked against the hashes their cache blobs are named by),
    /// and whether it can be used offline.
    Info {
        /// Catalogue name, Hub repository ORG/NAME[@REVISION] or directory.
        #[arg(default_value = DEFAULT_MODEL, value_name = "NAME")]
        name: String,
        /// Git revision (branch, tag, commit).
        #[arg(long, value_name = "REV")]
        revision: Option<String>,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "text")]
        format: InfoFormat,
    },
}

/// Runs a `models` subcommand.
pub fn run(command: ModelsCommand, global: Global) -> anyhow::Result<ExitCode> {
    let resolver = Resolver::from_env()?;
    match command {
        ModelsCommand::List { format } => list(&resolver, format),
        ModelsCommand::Fetch {
            name,
            revision,
            force,
            offline,
        } => {
            let spec = ModelSpec::parse(&name)?.with_revision(revision.as_deref())?;
            let resolver = if offline {
                resolver.with_offline(true)
            } else {
                resolver
            };
            let mut bars = DownloadBars::new(global.quiet);
            let files =
                resolver.fetch(&spec, &FetchOptions::default().with_force(force), &mut bars)?;
            let p = &files.provenance;
            let how = match p.origin {
                Origin::Download => format!("downloaded {} file(s)", p.downloaded.len()),
                Origin::Cache => "already in the cache".to_string(),
                Origin::Directory => "a local directory".to_string(),
            };
            let line = match (&p.repo, &p.commit) {
                (Some(repo), Some(commit)) => format!("{spec}: {repo}@{commit}, {how}"),
                _ => format!("{spec}: {how} with every file the model needs"),
            };
            emit(None, &format!("{line}\n{}\n", files.dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Info {
            name,
            revision,
            format,
        } => {
            let spec = ModelSpec::parse(&name)?.with_revision(revision.as_deref())?;
            info(&resolver, &spec, format)
        }
    }
}

fn list(resolver: &Resolver, format: InfoFormat) -> anyhow::Result<ExitCode> {
    let models = resolver.list();
    let text = match format {
        InfoFormat::Json => {
            let items: Vec<_> = models
                .iter()
                .map(|m| {
                    let man = &m.manifest;
                    json!({
                        "name": man.name,
                        "description": man.description,
                        "repo": man.repo,
                        "revision": man.revision,
                        "task": man.task.as_str(),
                        "source_language": man.source_language,
                        "target_language": man.target_language,
                        "license": man.license,
                        "cached": m.cached,
                    })
                })
                .collect();
            format!("{}\n", serde_json::to_string_pretty(&items)?)
        }
        InfoFormat::Text => {
            let rows: Vec<[String; 5]> = models
                .iter()
                .map(|m| {
                    let man = &m.manifest;
                    [
                        man.name.clone(),
                        format!("{}@{}", man.repo, man.revision),
                        format!(
                            "{} {}->{}",
                            man.task.as_str(),
                            man.source_language,
                            man.target_language
                        ),
                        if m.cached { "cached" } else { "-" }.to_string(),
                        man.description.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            table(
                &["NAME", "REPOSITORY", "TASK", "CACHE", "DESCRIPTION"],
                &rows,
            )
        }
    };
    emit(None, &text)?;
    Ok(ExitCode::SUCCESS)
}

fn info(resolver: &Resolver, spec: &ModelSpec, format: InfoFormat) -> anyhow::Result<ExitCode> {
    let info = resolver.info(spec)?;
    let text = match format {
        InfoFormat::Json => {
            let files: Vec<_> = info
                .files
                .iter()
                .map(|f| {
                    json!({
                        "name": f.name,
                        "size": f.size,
                        "used": f.used,
                        "path": f.path,
                        "hash": hash_json(&f.integrity),
                    })
                })
                .collect();
            let value = json!({
                "spec": spec.to_string(),
                "repo": info.repo,
                "revision": info.revision,
                "commit": info.commit,
                "cache_folder": info.cache_folder,
                "location": info.location,
                "license": info.manifest.as_ref().map(|m| m.license.clone()),
                "description": info.manifest.as_ref().and_then(|m| m.description.clone()),
                "ready": info.ready(),
                "problem": info.problem,
                "files": files,
            });
            format!("{}\n", serde_json::to_string_pretty(&value)?)
        }
        InfoFormat::Text => {
            let mut out = String::new();
            let mut line = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    out.push_str(&format!("{k:<13}{v}\n"));
                }
            };
            line("model", Some(spec.to_string()));
            if let Some(m) = &info.manifest {
                line("description", m.description.clone());
                line("license", Some(m.license.clone()));
            }
            line("repository", info.repo.clone());
            line("revision", info.revision.clone());
            line("commit", info.commit.clone());
            line(
                "cache folder",
                info.cache_folder.as_ref().map(|p| p.display().to_string()),
            );
            line(
                "location",
                info.location.as_ref().map(|p| p.display().to_string()),
            );
            line(
                "ready",
                Some(match &info.problem {
                    None => "yes: usable offline".to_string(),
                    Some(p) => format!("no: {p}"),
                }),
            );
            if !info.files.is_empty() {
                out.push_str("files\n");
                let rows: Vec<[String; 4]> = info
                    .files
                    .iter()
                    .map(|f| {
                        [
                            format!("  {}", f.name),
                            human_size(f.size),
                            if f.used { "used" } else { "not used" }.to_string(),
                            match &f.integrity {
                                Integrity::Unchecked => String::new(),
                                Integrity::Verified(kind) => format!("{} ok", kind.as_str()),
                                Integrity::Mismatch { kind, .. } => {
                                    format!("DAMAGED ({} mismatch)", kind.as_str())
                                }
                            },
                        ]
                    })
                    .collect();
                out.push_str(&table_rows(&rows));
            }
            out
        }
    };
    emit(None, &text)?;
    Ok(ExitCode::SUCCESS)
}

/// `null` when not checked, else the hash function, whether it matched and, if not, both hashes.
fn hash_json(integrity: &Integrity) -> serde_json::Value {
    match integrity {
        Integrity::Unchecked => serde_json::Value::Null,
        Integrity::Verified(kind) => json!({"algorithm": kind.as_str(), "ok": true}),
        Integrity::Mismatch {
            kind,
            expected,
            actual,
        } => json!({
            "algorithm": kind.as_str(),
            "ok": false,
            "expected": expected,
            "actual": actual,
        }),
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < UNITS.len() {
        size /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut all: Vec<[String; N]> = vec![header.map(str::to_string)];
    all.extend(rows.iter().cloned());
    table_rows(&all)
}

/// Columns padded to their widest cell (the last one is not padded).
fn table_rows<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
