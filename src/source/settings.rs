//! Where the Hugging Face cache lives, which server to ask, which token to send and whether the
//! network may be used: the `HF_*` environment variables, read once into plain data.

use std::fmt;
use std::path::{Path, PathBuf};

/// The Hugging Face Hub, when `HF_ENDPOINT` does not name another server.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

const DEFAULT_RETRIES: usize = 2;

/// An access token for gated or private repositories.
///
/// Its `Debug` output is redacted, so settings can be logged; the only way to read the secret is
/// [`Token::expose`], which the download code calls to build the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from text; surrounding whitespace (a token file's newline) is dropped, and empty
    /// text gives `None`.
    pub fn new(text: &str) -> Option<Token> {
        let text = text.trim();
        (!text.is_empty()).then(|| Token(text.to_string()))
    }

    /// The secret itself. Never put it in a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// How to reach the Hub and where its cache is.
///
/// Build it with [`HubSettings::from_env`] (what the command line does) and adjust with the
/// `with_*` setters; tests build it from a supplied map with [`HubSettings::from_vars`] so that they
/// never touch the process environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    /// The hub cache directory, laid out as `models--Org--name/{blobs,snapshots,refs}` exactly as
    /// the Python `huggingface_hub` library does, so both share downloads.
    ///
    /// Default: `~/.cache/huggingface/hub`. From the environment: `HF_HUB_CACHE`, else
    /// `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`.
    pub cache_dir: PathBuf,
    /// Base URL of the Hub, without a trailing slash. Default: [`DEFAULT_ENDPOINT`]; from the
    /// environment: `HF_ENDPOINT`.
    pub endpoint: String,
    /// Token sent as `Authorization: Bearer …`. Default: none. From the environment: `HF_TOKEN`,
    /// else `HUGGING_FACE_HUB_TOKEN`, else the file `HF_TOKEN_PATH`, else `$HF_HOME/token` (the file
    /// `huggingface-cli login` writes).
    pub token: Option<Token>,
    /// Use the cache only and never open a network connection. Default: `false`; from the
    /// environment: `HF_HUB_OFFLINE` set to `1`, `true`, `yes` or `on`.
    pub offline: bool,
    /// How often a failed download is retried (resuming where it stopped) before giving up.
    /// Default: 2.
    pub retries: usize,
}

impl Default for HubSettings {
    /// The built-in defaults; of the environment only the home directory is used (see
    /// [`HubSettings::from_env`] for the `HF_*` variables).
    fn default() -> Self {
        let home = home_from(|k| std::env::var(k).ok());
        HubSettings {
            cache_dir: default_hf_home(home.as_deref(), None).join("hub"),
            endpoint: DEFAULT_ENDPOINT.to_string(),
            token: None,
            offline: false,
            retries: DEFAULT_RETRIES,
        }
    }
}

impl HubSettings {
    /// Settings from the process environment (see each field for the variables read).
    pub fn from_env() -> Self {
        Self::from_vars(|key| std::env::var(key).ok())
    }

    /// Settings from any variable lookup: `var("HF_HOME")` returns the value or `None`. `HOME`
    /// (or `USERPROFILE`) is looked up the same way to expand `~` and find the default cache.
    /// Empty values count as unset. The token file, if any, is read from disk.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| var(key).filter(|v| !v.trim().is_empty());
        let home = home_from(get);
        let expand = |value: String| expand_tilde(&value, home.as_deref());

        let hf_home = match get("HF_HOME") {
            Some(dir) => expand(dir),
            None => default_hf_home(home.as_deref(), get("XDG_CACHE_HOME").map(&expand)),
        };
        let cache_dir = get("HF_HUB_CACHE")
            .or_else(|| get("HUGGINGFACE_HUB_CACHE"))
            .map(&expand)
            .unwrap_or_else(|| hf_home.join("hub"));
        let endpoint = get("HF_ENDPOINT")
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let token = get("HF_TOKEN")
            .or_else(|| get("HUGGING_FACE_HUB_TOKEN"))
            .and_then(|t| Token::new(&t))
            .or_else(|| {
                let file = get("HF_TOKEN_PATH")
                    .map(&expand)
                    .unwrap_or_else(|| hf_home.join("token"));
                // A missing or unreadable token file means "no token", as in huggingface_hub.
                std::fs::read_to_string(file)
                    .ok()
                    .and_then(|t| Token::new(&t))
            });
        let offline = get("HF_HUB_OFFLINE").is_some_and(|v| is_truthy(&v));
        HubSettings {
            cache_dir,
            endpoint,
            token,
            offline,
            retries: DEFAULT_RETRIES,
        }
    }

    /// Sets [`HubSettings::cache_dir`].
    #[must_use]
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = dir.into();
        self
    }

    /// Sets [`HubSettings::endpoint`] (a trailing `/` is dropped).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into().trim_end_matches('/').to_string();
        self
    }

    /// Sets [`HubSettings::token`]; `None` or empty text sends no token.
    #[must_use]
    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.token = token.and_then(Token::new);
        self
    }

    /// Sets [`HubSettings::retries`].
    #[must_use]
    pub fn with_retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// Sets [`HubSettings::offline`].
    #[must_use]
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }
}

/// `1`, `true`, `yes`, `on` in any case, as huggingface_hub reads its boolean variables.
fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn home_from(var: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    var("HOME")
        .or_else(|| var("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. Without any home directory the
/// cache goes under the working directory rather than failing: downloading still works.
fn default_hf_home(home: Option<&Path>, xdg_cache: Option<PathBuf>) -> PathBuf {
    let base = xdg_cache.unwrap_or_else(|| match home {
        Some(h) => h.join(".cache"),
        None => PathBuf::from(".cache"),
    });
    base.join("huggingface")
}

/// Replaces a leading `~` or `~/` by the home directory; `~user` forms are left alone.
pub(crate) fn expand_tilde(value: &str, home: Option<&Path>) -> PathBuf {
    match (value.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home.to_path_buf(),
        (Some(rest), Some(home)) if rest.starts_with('/') || rest.starts_with('\\') => {
            home.join(&rest[1..])
        }
        _ => PathBuf::from(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> HubSettings {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubSettings::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_home() {
        let s = settings(&[("HOME", "/home/ann")]);
        assert_eq!(
            s.cache_dir,
            PathBuf::from("/home/ann/.cache/huggingface/hub")
        );
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert!(!s.offline);
    }

    #[test]
    fn hf_home_and_xdg() {
        let s = settings(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/xdg")]);
        assert_eq!(s.cache_dir, PathBuf::from("/xdg/huggingface/hub"));
        let s = settings(&[
            ("HOME", "/h"),
            ("HF_HOME", "~/hf"),
            ("XDG_CACHE_HOME", "/xdg"),
        ]);
        assert_eq!(s.cache_dir, PathBuf::from("/h/hf/hub"));
    }

    #[test]
    fn hub_cache_wins_over_hf_home() {
        let s = settings(&[("HF_HOME", "/a"), ("HF_HUB_CACHE", "/b/cache")]);
        assert_eq!(s.cache_dir, PathBuf::from("/b/cache"));
        let s = settings(&[("HF_HOME", "/a"), ("HUGGINGFACE_HUB_CACHE", "/c")]);
        assert_eq!(s.cache_dir, PathBuf::from("/c"));
        // Empty means unset.
        let s = settings(&[("HF_HOME", "/a"), ("HF_HUB_CACHE", "")]);
        assert_eq!(s.cache_dir, PathBuf::from("/a/hub"));
    }

    #[test]
    fn endpoint_and_offline() {
        let s = settings(&[
            ("HF_ENDPOINT", "http://mirror.local/"),
            ("HF_HUB_OFFLINE", "1"),
        ]);
        assert_eq!(s.endpoint, "http://mirror.local");
        assert!(s.offline);
        for (v, want) in [
            ("TRUE", true),
            ("yes", true),
            ("On", true),
            ("0", false),
            ("no", false),
        ] {
            assert_eq!(settings(&[("HF_HUB_OFFLINE", v)]).offline, want, "{v}");
        }
    }

    #[test]
    fn token_from_variable_then_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "hf_from_file\n").unwrap();
        let home = dir.path().to_str().unwrap();
        let s = settings(&[("HF_HOME", home)]);
        assert_eq!(s.token.as_ref().map(Token::expose), Some("hf_from_file"));
        let s = settings(&[("HF_HOME", home), ("HF_TOKEN", "hf_var")]);
        assert_eq!(s.token.as_ref().map(Token::expose), Some("hf_var"));
        let s = settings(&[("HF_HOME", "/nonexistent-dir-for-tolk-tests")]);
        assert!(s.token.is_none());
    }

    #[test]
    fn token_is_redacted_in_debug() {
        let s = HubSettings::default().with_token(Some("hf_secret_value"));
        let shown = format!("{s:?}");
        assert!(!shown.contains("hf_secret_value"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn tilde_expansion() {
        let home = Path::new("/u");
        assert_eq!(expand_tilde("~", Some(home)), PathBuf::from("/u"));
        assert_eq!(expand_tilde("~/m", Some(home)), PathBuf::from("/u/m"));
        assert_eq!(expand_tilde("~bob/m", Some(home)), PathBuf::from("~bob/m"));
        assert_eq!(expand_tilde("~/m", None), PathBuf::from("~/m"));
    }
}
