//! `tolk serve`: the translation server (LibreTranslate's API and tolk's own).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use tolk::pipeline::SummarizerChoice;
use tolk::serve::{ApiKey, Cidr, Models, SchedulerOptions, ServeOptions, ServedModel, Server};
use tolk::source::ModelSpec;

use super::args::{PipelineArgs, Size};
use super::Global;

/// The server's defaults, which the flags' defaults show: one place ([`ServeOptions::default`]).
static DEFAULTS: std::sync::LazyLock<ServeOptions> =
    std::sync::LazyLock::new(ServeOptions::default);

/// Options of `tolk serve`.
#[derive(Debug, Args)]
#[command(after_help = "\
LibreTranslate's API (POST /translate, /detect; GET /languages, /frontend/settings) and tolk's
own (POST /v1/translate, /v1/summarize; GET /healthz, /readyz, /metrics). --model may be given
several times; each model's language pair comes from the catalogue, from an opus-mt-SRC-TGT name,
or from --pair (in the order of the models).

Examples:
  tolk serve
  tolk serve --host 0.0.0.0 --port 5000 --api-keys keys.txt --char-limit 5000
  tolk serve --model ./opus-mt-zh-en --pair zh-en --quantize int8
  curl -s localhost:5000/translate -H 'Content-Type: application/json' \\
       -d '{\"q\": \"Het kabinet is gevallen.\", \"source\": \"nl\", \"target\": \"en\"}'")]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value_t = DEFAULTS.addr.ip(), help_heading = "Server")]
    pub host: IpAddr,

    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = DEFAULTS.addr.port(), help_heading = "Server")]
    pub port: u16,

    /// The language pair of each --model, in order (SRC-TGT, e.g. nl-en), where neither the
    /// catalogue nor the model's name says it.
    #[arg(long, value_name = "SRC-TGT", help_heading = "Server")]
    pub pair: Vec<String>,

    /// A file of API keys, one per line, each optionally with its own `req_limit=N` (requests
    /// per minute) and `char_limit=N` (characters per text); `#` comments. Every request then
    /// needs a key from it, and a client is its key.
    #[arg(long, value_name = "FILE", help_heading = "Server")]
    pub api_keys: Option<PathBuf>,

    /// A proxy (an address or a network, e.g. 10.0.0.0/8) whose `Forwarded` and
    /// `X-Forwarded-For` headers name the client; repeatable. From other peers they are ignored.
    #[arg(long, value_name = "CIDR", help_heading = "Server")]
    pub trusted_proxy: Vec<Cidr>,

    /// Most clients the rate limiter follows at once (those seen in the last minute); new ones
    /// beyond get 503.
    #[arg(long, value_name = "N", default_value_t = DEFAULTS.max_clients, help_heading = "Limits")]
    pub max_clients: usize,

    /// Most characters in one text (LibreTranslate's char limit).
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub char_limit: Option<usize>,

    /// Most texts in one request's list.
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub batch_limit: Option<usize>,

    /// Most bytes in a request body (K, M: 1024-based).
    #[arg(long, value_name = "SIZE", help_heading = "Limits",
          default_value_t = Size(DEFAULTS.max_body_bytes as u64))]
    pub max_body: Size,

    /// Most requests answered at once; more get 503 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = DEFAULTS.max_in_flight, help_heading = "Limits")]
    pub max_in_flight: usize,

    /// Most segments waiting for the model; a request that would pass it gets 503.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULTS.scheduler.max_queued,
        help_heading = "Limits"
    )]
    pub max_queued: usize,

    /// Most requests per minute from one client (API key, else address); more get 429.
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub req_limit: Option<u32>,

    /// Seconds a request may take; then 503.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = DEFAULTS.request_timeout.as_secs(),
        help_heading = "Limits"
    )]
    pub request_timeout: u64,

    /// Milliseconds a round of segments waits for more requests' segments before it runs.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = DEFAULTS.scheduler.max_wait.as_millis() as u64,
        help_heading = "Batching"
    )]
    pub batch_wait: u64,

    /// Allow cross-origin requests from this origin (`*`: any). Default: no CORS headers.
    #[arg(long, value_name = "ORIGIN", help_heading = "Server")]
    pub cors: Option<String>,

    /// Seconds the requests in flight have to finish after SIGTERM or SIGINT.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = DEFAULTS.shutdown_grace.as_secs(),
        help_heading = "Server"
    )]
    pub shutdown_grace: u64,

    /// Do not serve the translation page at / (the API only).
    #[arg(long, alias = "disable-web-ui", help_heading = "Server")]
    pub no_web_ui: bool,

    /// Do not translate files (`/translate_file`, `/v1/translate_file`).
    #[arg(long, alias = "disable-files-translation", help_heading = "Server")]
    pub no_file_translation: bool,

    /// Most bytes in an uploaded file (K, M: 1024-based).
    #[arg(long, value_name = "SIZE", help_heading = "Limits",
          default_value_t = Size(DEFAULTS.max_file_bytes as u64))]
    pub max_file_size: Size,

    /// Seconds a translated file waits for its download (`/download_file`).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = DEFAULTS.file_ttl.as_secs(),
        help_heading = "Limits"
    )]
    pub file_ttl: u64,

    /// Most bytes of translated files held for download at once, in memory (K, M, G:
    /// 1024-based); the oldest go first.
    #[arg(long, value_name = "SIZE", help_heading = "Limits",
          default_value_t = Size(DEFAULTS.file_spool_bytes as u64))]
    pub file_spool: Size,

    /// Serve everything under this path (e.g. /tolk: the page at /tolk/, the API at
    /// /tolk/translate), for a proxy that forwards a path.
    #[arg(long, value_name = "PATH", value_parser = parse_prefix, help_heading = "Server")]
    pub url_prefix: Option<String>,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// A URL path prefix: `/` and letters, digits, `-`, `_`, `.`; no trailing slash.
fn parse_prefix(text: &str) -> Result<String, String> {
    let p = text.trim_end_matches('/');
    let ok = text.starts_with('/')
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
        && !p.contains("//");
    if ok {
        Ok(p.to_string())
    } else {
        Err(format!(
            "`{text}` is not a path prefix (for example /tolk: starts with /, letters, digits, -, _, .)"
        ))
    }
}

/// The language pair of a model: `--pair`, else its catalogue entry, else an `opus-mt-SRC-TGT`
/// name (Hub repository or directory).
fn pair_of(
    spec: &ModelSpec,
    text: &str,
    given: Option<&String>,
) -> anyhow::Result<(String, String)> {
    if let Some(p) = given {
        let (s, t) = p
            .split_once('-')
            .filter(|(s, t)| !s.is_empty() && !t.is_empty())
            .with_context(|| format!("--pair {p}: expected SRC-TGT, for example nl-en"))?;
        return Ok((s.to_ascii_lowercase(), t.to_ascii_lowercase()));
    }
    if let ModelSpec::Catalogue { name, .. } = spec {
        if let Some(m) = tolk::source::Catalogue::from_env()?.get(name) {
            return Ok((m.source_language.clone(), m.target_language.clone()));
        }
    }
    let name = text
        .trim_end_matches('/')
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(text);
    let name = name.split('@').next().unwrap_or(name);
    if let Some(rest) = name.strip_prefix("opus-mt-") {
        let parts: Vec<&str> = rest.split('-').collect();
        if let [s, t] = parts.as_slice() {
            return Ok((s.to_string(), t.to_string()));
        }
    }
    anyhow::bail!(
        "cannot tell the language pair of the model {text}: give it with --pair SRC-TGT (for example --pair nl-en)"
    )
}

/// Runs `tolk serve`.
#[allow(clippy::result_large_err)] // the loader returns the library's error type
pub fn run(args: ServeArgs, global: Global) -> anyhow::Result<ExitCode> {
    let api_keys = match &args.api_keys {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the API keys file {}", path.display()))?;
            ApiKey::parse_file(&text, path)?
        }
        None => Vec::new(),
    };
    // Every model's spec and pair are checked before the server starts.
    let mut specs = Vec::new();
    for (i, text) in args.pipeline.model.iter().enumerate() {
        let spec = args.pipeline.spec_of(text)?;
        let pair = pair_of(&spec, text, args.pair.get(i))?;
        specs.push((spec, pair));
    }
    anyhow::ensure!(
        args.pair.len() <= specs.len(),
        "{} --pair for {} --model",
        args.pair.len(),
        specs.len()
    );
    let batching = args
        .pipeline
        .batch_size
        .unwrap_or(DEFAULTS.scheduler.round_segments);
    let options = ServeOptions {
        addr: SocketAddr::new(args.host, args.port),
        api_keys,
        trusted_proxies: args.trusted_proxy.clone(),
        max_clients: args.max_clients.max(1),
        char_limit: args.char_limit,
        batch_limit: args.batch_limit,
        max_body_bytes: usize::try_from(args.max_body.0).unwrap_or(usize::MAX),
        max_in_flight: args.max_in_flight.max(1),
        req_limit: args.req_limit,
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
        cors: args.cors.clone(),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        web_ui: !args.no_web_ui,
        url_prefix: args.url_prefix.clone().unwrap_or_default(),
        file_translation: !args.no_file_translation,
        max_file_bytes: usize::try_from(args.max_file_size.0).unwrap_or(usize::MAX),
        file_ttl: Duration::from_secs(args.file_ttl.max(1)),
        file_spool_bytes: usize::try_from(args.file_spool.0).unwrap_or(usize::MAX),
        scheduler: SchedulerOptions {
            round_segments: batching.max(1),
            max_wait: Duration::from_millis(args.batch_wait),
            max_queued: args.max_queued.max(1),
        },
    };
    let pipeline_args = args.pipeline.clone();
    let loader_global = Global {
        quiet: true,
        ..global
    };
    let server = Server::start(options, move || {
        let failed = |e: anyhow::Error| tolk::Error::Internal(format!("{e:#}"));
        let summarizer = pipeline_args.summarizer(loader_global).map_err(failed)?;
        let native = match &summarizer {
            SummarizerChoice::Custom(s) => Some(Arc::clone(s)),
            _ => None,
        };
        let mut models = Vec::new();
        for (spec, (source, target)) in specs {
            let pipeline = pipeline_args
                .build_with_hint(
                    spec.clone(),
                    summarizer.clone(),
                    loader_global,
                    Some((&source, &target)),
                )
                .map_err(|e| failed(e.context(format!("cannot load the model {spec}"))))?;
            models.push(ServedModel {
                pipeline: Arc::new(pipeline),
                source,
                target,
                translator: None,
            });
        }
        Ok(Models {
            models,
            summarizer: native,
        })
    })?;
    let base = format!(
        "http://{}{}",
        server.addr(),
        args.url_prefix.as_deref().unwrap_or("")
    );
    if !global.silent {
        eprintln!(
            "tolk serve: listening on {base}/ (loading the models; GET {base}/readyz says when they are in)"
        );
    }
    match server.wait_until_ready() {
        Some(Ok(())) if !global.silent && !args.no_web_ui => {
            eprintln!("tolk serve: ready; the translation page is {base}/")
        }
        Some(Ok(())) if !global.silent => eprintln!("tolk serve: ready"),
        Some(Err(e)) => {
            let _ = server.shutdown();
            anyhow::bail!("{e}");
        }
        _ => {}
    }
    server.wait()?;
    if !global.silent {
        eprintln!("tolk serve: stopped");
    }
    Ok(ExitCode::SUCCESS)
}
