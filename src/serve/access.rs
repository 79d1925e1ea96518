//! Who a request comes from, and how much it may ask: API keys with their own limits, the
//! client's address (through trusted proxies only), and the per-client rate limiter.
//!
//! A client is its API key when the server checks keys (and then only a key from the key file
//! counts: a made-up key is refused, never a new identity), else its address: the peer's, or,
//! when the peer is one of the `--trusted-proxy` networks, the address the proxy forwarded
//! (`Forwarded: for=...`, else `X-Forwarded-For`, read from the right, skipping the trusted
//! proxies themselves). LibreTranslate counts keys the same way.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use crate::error::{Error, Result};

/// An API key with its own limits, as LibreTranslate's key database has them.
///
/// The key file has one key a line, optionally followed by `req_limit=N` (requests per minute)
/// and `char_limit=N` (characters per text); `#` starts a comment:
///
/// ```text
/// # newsroom: the server's limits
/// 9f2c51d0-newsroom
/// # the archive's bulk job: more requests, longer texts
/// 71ab03e4-archive req_limit=600 char_limit=20000
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key.
    pub key: String,
    /// Requests per minute for this key; `None`: the server's `--req-limit`.
    pub req_limit: Option<u32>,
    /// Characters per text for this key; `None`: the server's `--char-limit`.
    pub char_limit: Option<usize>,
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        ApiKey::new(key)
    }
}

impl ApiKey {
    /// A key with the server's limits.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey {
            key: key.into(),
            req_limit: None,
            char_limit: None,
        }
    }

    /// Reads a key file (see [`ApiKey`]); `path` names it in errors, with the line.
    pub fn parse_file(text: &str, path: &Path) -> Result<Vec<ApiKey>> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words = line.split_whitespace();
            let Some(key) = words.next() else { continue };
            let bad = |message: String| Error::config(path, format!("line {}", i + 1), message);
            let mut entry = ApiKey::new(key);
            for word in words {
                let (name, value) = word.split_once('=').ok_or_else(|| {
                    bad(format!(
                        "`{word}`: expected req_limit=N or char_limit=N after the key"
                    ))
                })?;
                let number =
                    |what: &str| {
                        value.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                            bad(format!("{what}: `{value}` is not a positive number"))
                        })
                    };
                match name {
                    "req_limit" => {
                        entry.req_limit = Some(u32::try_from(number(name)?).unwrap_or(u32::MAX))
                    }
                    "char_limit" => {
                        entry.char_limit =
                            Some(usize::try_from(number(name)?).unwrap_or(usize::MAX))
                    }
                    _ => {
                        return Err(bad(format!(
                            "unknown setting `{name}` (req_limit and char_limit are known)"
                        )))
                    }
                }
            }
            keys.push(entry);
        }
        if keys.is_empty() {
            return Err(Error::config(path, "keys", "the file has no keys"));
        }
        Ok(keys)
    }
}

/// An IP network: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the network (an IPv4 address mapped into IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an address or network (10.0.0.0/8, fd00::/8)"))?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4 address mapped into IPv6 as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer's, or the one that trusted proxies forwarded.
pub(crate) fn client_address(peer: SocketAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer.ip());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // The hops, nearest last: `Forwarded`'s for= values, else X-Forwarded-For.
    let mut hops: Vec<IpAddr> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| forwarded_node(value.trim()))
                    .flatten()
            })
        })
        .collect();
    if hops.is_empty() {
        hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| forwarded_node(a.trim()))
            .collect();
    }
    // From the nearest hop back: the first address that is not one of our proxies.
    hops.into_iter()
        .rev()
        .map(canonical)
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

/// An address in a forwarding header: `192.0.2.1`, `192.0.2.1:4711`, `"[2001:db8::1]:4711"`,
/// `2001:db8::1`; `None` for `unknown` and obfuscated names.
fn forwarded_node(value: &str) -> Option<IpAddr> {
    let v = value.trim_matches('"');
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// The window of the rate limiter.
const WINDOW: Duration = Duration::from_secs(60);

/// Requests per client over the last minute, for at most `cap` clients at once: windows with
/// nothing in the last minute are dropped (swept at most once a second, and whenever the map is
/// full), so memory follows the clients of the last minute, not every client ever seen.
#[derive(Debug)]
pub(crate) struct Limiter {
    windows: HashMap<String, VecDeque<Instant>>,
    cap: usize,
    swept: Option<Instant>,
    /// The cap was reached and said so; said again once it has been left.
    full: bool,
}

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over its limit: retry after this many seconds.
    Rate { limit: u32, retry_after: u64 },
    /// The limiter holds `cap` clients already.
    Full { cap: usize },
}

impl Limiter {
    /// A limiter for at most `cap` clients (at least 1).
    pub(crate) fn new(cap: usize) -> Self {
        Limiter {
            windows: HashMap::new(),
            cap: cap.max(1),
            swept: None,
            full: false,
        }
    }

    /// Clients held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.windows.len()
    }

    /// Counts a request of `client`, limited to `limit` a minute.
    pub(crate) fn check(
        &mut self,
        client: &str,
        limit: u32,
        now: Instant,
    ) -> std::result::Result<(), Refusal> {
        let due = self
            .swept
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if due || (self.windows.len() >= self.cap && !self.windows.contains_key(client)) {
            self.sweep(now);
        }
        if !self.windows.contains_key(client) && self.windows.len() >= self.cap {
            if !self.full {
                self.full = true;
                tracing::warn!(
                    cap = self.cap,
                    "the rate limiter holds {} clients of the last minute, its cap: new clients are refused with 503 until their windows expire",
                    self.cap
                );
            }
            return Err(Refusal::Full { cap: self.cap });
        }
        let window = self.windows.entry(client.to_string()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            let retry_after = window.front().map_or(60, |t| {
                WINDOW
                    .as_secs()
                    .saturating_sub(now.duration_since(*t).as_secs())
                    .max(1)
            });
            return Err(Refusal::Rate { limit, retry_after });
        }
        window.push_back(now);
        Ok(())
    }

    /// Drops the windows with nothing in the last minute.
    fn sweep(&mut self, now: Instant) {
        self.swept = Some(now);
        self.windows
            .retain(|_, w| w.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        if self.full && self.windows.len() < self.cap {
            self.full = false;
            tracing::info!(
                clients = self.windows.len(),
                "the rate limiter is below its cap again"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn key_files_give_keys_their_own_limits() {
        let text = "# comment\nplain\n\nbulk req_limit=600 char_limit=20000 # the archive\n";
        let keys = ApiKey::parse_file(text, Path::new("keys.txt")).unwrap();
        assert_eq!(keys[0], ApiKey::new("plain"));
        assert_eq!(keys[1].req_limit, Some(600));
        assert_eq!(keys[1].char_limit, Some(20000));
        let e = ApiKey::parse_file("k req_limit=x\n", Path::new("keys.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("keys.txt") && e.contains("line 1"), "{e}");
        assert!(ApiKey::parse_file("k speed=3\n", Path::new("k")).is_err());
        assert!(ApiKey::parse_file("# nothing\n", Path::new("k")).is_err());
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("proxy".parse::<Cidr>().is_err());
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.5, 10.0.0.9"),
        );
        let proxy: SocketAddr = "10.0.0.2:5555".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.1:5555".parse().unwrap();
        // Through our proxy: the client before our proxies.
        assert_eq!(
            client_address(proxy, &h, &trusted),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        // From anyone else: the header is a lie until proven otherwise.
        assert_eq!(client_address(stranger, &h, &trusted), stranger.ip());
        assert_eq!(client_address(proxy, &h, &[]), proxy.ip());
        // A client cannot pass itself off as another by sending the header through the proxy:
        // the proxy appends the address it saw, and that one is read.
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 203.0.113.5"),
        );
        assert_eq!(
            client_address(proxy, &h, &trusted),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        // Forwarded wins, quoted IPv6 with a port included.
        h.insert(
            "forwarded",
            HeaderValue::from_static("for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\""),
        );
        assert_eq!(
            client_address(proxy, &h, &trusted),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn the_limiter_forgets_idle_clients_and_holds_a_cap() {
        let mut l = Limiter::new(100);
        let t0 = Instant::now();
        // A flood of distinct clients: never more than the cap held, the rest refused.
        let mut refused = 0;
        for i in 0..1000 {
            match l.check(&format!("key:{i}"), 5, t0) {
                Ok(()) => {}
                Err(Refusal::Full { cap }) => {
                    assert_eq!(cap, 100);
                    refused += 1;
                }
                Err(e) => panic!("{e:?}"),
            }
            assert!(l.len() <= 100);
        }
        assert_eq!(refused, 900);
        // A minute later their windows are idle: all dropped, new clients let in.
        let later = t0 + Duration::from_secs(61);
        assert!(l.check("10.0.0.1", 5, later).is_ok());
        assert_eq!(l.len(), 1);
        // The limit itself, with the wait until the oldest request leaves the window.
        for _ in 0..4 {
            l.check("10.0.0.1", 5, later).unwrap();
        }
        assert_eq!(
            l.check("10.0.0.1", 5, later + Duration::from_secs(20)),
            Err(Refusal::Rate {
                limit: 5,
                retry_after: 40
            })
        );
    }
}
