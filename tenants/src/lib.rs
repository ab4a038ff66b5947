//! The tenants file: which shops may call assay, with which keys, for which customer segments, within which
//! limits, and where their webhooks go. TOML like the rules, refused with file, line and column when wrong, and
//! reloaded the same way ([`TenantsWatcher`]: a broken edit keeps the last good file in force).
//!
//! ```toml
//! format = 1
//! allow_private_network = false   # webhooks to loopback/private addresses (and plain http) only when true
//!
//! [webhooks]
//! retry_secs = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
//! timeout_secs = 15
//!
//! [[tenant]]
//! id = "storefront"
//! name = "Web shop (retail)"
//! keys = ["sha256:<hex of the key>"]
//! segments = ["b2c"]
//! rate_per_minute = 600
//! max_in_flight = 50
//!
//! [tenant.webhook]
//! url = "https://shop.example/hooks/assay"
//! secret = "whsec_<base64>"
//! events = ["done", "failed"]
//! ```
//!
//! Keys are kept as SHA-256 digests only; [`identify`](Tenants::identify) compares a presented key with every
//! digest in constant time. No queues, no HTTP, no async.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use pricing_rules::files::At;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The format version this build reads.
pub const FORMAT: u32 = 1;

/// The Standard Webhooks retry schedule (seconds after the previous attempt), used when the file gives none.
pub const DEFAULT_RETRY_SECS: [u64; 8] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];
/// How long a receiver has to answer, when the file does not say.
pub const DEFAULT_TIMEOUT_SECS: u64 = 15;

const MAX_RETRY_SECS: u64 = 7 * 24 * 3600;
const MAX_RETRIES: usize = 32;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    format: At<u32>,
    #[serde(default)]
    allow_private_network: Option<At<bool>>,
    #[serde(default)]
    webhooks: Option<WebhooksEntry>,
    #[serde(default)]
    tenant: Vec<TenantEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhooksEntry {
    #[serde(default)]
    retry_secs: Option<At<Vec<u64>>>,
    #[serde(default)]
    timeout_secs: Option<At<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEntry {
    id: At<String>,
    name: At<String>,
    keys: At<Vec<At<String>>>,
    segments: At<Vec<At<String>>>,
    #[serde(default)]
    rate_per_minute: Option<At<u32>>,
    #[serde(default)]
    max_in_flight: Option<At<u32>>,
    #[serde(default)]
    webhook: Option<At<WebhookEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookEntry {
    url: At<String>,
    secret: At<String>,
    #[serde(default)]
    events: Option<At<Vec<At<String>>>>,
}

/// A job's event a webhook can be sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    Running,
    Done,
    Failed,
}

impl Event {
    pub const ALL: [Event; 3] = [Event::Running, Event::Done, Event::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Running => "running",
            Event::Done => "done",
            Event::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A webhook signing secret: the bytes after `whsec_`, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    text: String,
    bytes: Vec<u8>,
}

impl Secret {
    /// The secret as written (`whsec_...`).
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The key's bytes: the base64 after `whsec_`, decoded.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where a tenant's webhooks go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: url::Url,
    pub secret: Secret,
    pub events: Vec<Event>,
}

impl Webhook {
    pub fn wants(&self, event: Event) -> bool {
        self.events.contains(&event)
    }
}

/// One shop that calls assay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// The segments this tenant may ask for; the first is its default.
    pub segments: Vec<String>,
    /// Requests per minute; `None`: no limit.
    pub rate_per_minute: Option<u32>,
    /// Unfinished jobs at once; `None`: no limit.
    pub max_in_flight: Option<u32>,
    pub webhook: Option<Webhook>,
}

/// How webhooks are retried and timed out, for every tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// The wait before each attempt, the first attempt's first: one attempt per entry.
    pub retry: Vec<Duration>,
    pub timeout: Duration,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        WebhookPolicy {
            retry: DEFAULT_RETRY_SECS.iter().map(|s| Duration::from_secs(*s)).collect(),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        }
    }
}

/// A validated tenants file.
#[derive(Debug, Clone)]
pub struct Tenants {
    /// SHA-256 of the file's text, as hex.
    pub version: String,
    /// Webhooks may go to loopback, private and link-local addresses, and over plain http.
    pub allow_private_network: bool,
    pub webhooks: WebhookPolicy,
    tenants: Vec<Arc<Tenant>>,
    /// Every key's digest and the index of its tenant, in file order.
    keys: Vec<([u8; 32], usize)>,
    by_id: HashMap<String, usize>,
}

impl pricing_rules::Versioned for Tenants {
    fn version(&self) -> &str {
        &self.version
    }
    const WHAT: &'static str = "tenants file";
}

/// One problem in the tenants file, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why a tenants file was not loaded: every problem, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TenantsError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for TenantsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "the tenants file was not loaded: {n} problem{}", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            if p.line == 0 {
                write!(f, "\n  {}: {}", self.file, p.message)?;
            } else {
                write!(f, "\n  {}:{}:{}: {}", self.file, p.line, p.column, p.message)?;
            }
        }
        Ok(())
    }
}

/// The digest a key is written as in the file: `sha256:` and 64 lowercase hex digits.
pub fn key_digest(key: &str) -> String {
    format!("sha256:{:x}", Sha256::digest(key.as_bytes()))
}

/// A new API key (256 random bits) with its digest for the file.
pub fn new_key() -> (String, String) {
    let key = format!("ak_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let digest = key_digest(&key);
    (key, digest)
}

/// A new webhook signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Whether two digests are equal, every byte compared whatever differs.
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = pricing_rules::locate(self.text, span);
        self.problems.push(Problem { line, column, message: message.into() });
    }
}

impl Tenants {
    /// Reads and validates a tenants file.
    pub fn load(path: &Path) -> Result<Tenants, TenantsError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TenantsError {
            file: file.clone(),
            problems: vec![Problem { line: 0, column: 0, message: format!("cannot read it: {e}") }],
        })?;
        Tenants::parse(&file, &text)
    }

    /// Validates a tenants file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Tenants, TenantsError> {
        let mut c = Checker { text, problems: Vec::new() };
        let fail = |c: Checker| TenantsError { file: file.to_owned(), problems: c.problems };
        let entry: FileEntry = match toml::from_str(text) {
            Ok(e) => e,
            Err(e) => {
                let message = e.message().trim().to_owned();
                match e.span() {
                    Some(span) => c.at(span, message),
                    None => c.problems.push(Problem { line: 0, column: 0, message }),
                }
                return Err(fail(c));
            }
        };
        if *entry.format.get_ref() != FORMAT {
            c.at(
                entry.format.span(),
                format!("format {} is not {FORMAT}, the one this assay reads", entry.format.get_ref()),
            );
            return Err(fail(c));
        }
        let allow_private_network = entry.allow_private_network.as_ref().is_some_and(|a| *a.get_ref());
        let mut webhooks = WebhookPolicy::default();
        if let Some(w) = &entry.webhooks {
            if let Some(r) = &w.retry_secs {
                let secs = r.get_ref();
                if secs.is_empty() || secs.len() > MAX_RETRIES {
                    c.at(
                        r.span(),
                        format!("retry_secs needs 1 to {MAX_RETRIES} waits (the first attempt's wait first)"),
                    );
                } else if let Some(s) = secs.iter().find(|s| **s > MAX_RETRY_SECS) {
                    c.at(r.span(), format!("retry_secs: {s} is over {MAX_RETRY_SECS} (a week)"));
                } else {
                    webhooks.retry = secs.iter().map(|s| Duration::from_secs(*s)).collect();
                }
            }
            if let Some(t) = &w.timeout_secs {
                match *t.get_ref() {
                    1..=300 => webhooks.timeout = Duration::from_secs(*t.get_ref()),
                    other => c.at(t.span(), format!("timeout_secs {other} is not from 1 to 300")),
                }
            }
        }

        let mut tenants = Vec::new();
        let mut keys: Vec<([u8; 32], usize)> = Vec::new();
        let mut by_id = HashMap::new();
        let mut key_owner: BTreeMap<[u8; 32], String> = BTreeMap::new();
        for t in &entry.tenant {
            let id = t.id.get_ref().clone();
            if !valid_id(&id) {
                c.at(t.id.span(), format!("tenant id \"{id}\" must be 1 to 64 characters of a-z, 0-9, - and _"));
            } else if by_id.contains_key(&id) {
                c.at(t.id.span(), format!("tenant \"{id}\" appears twice"));
            }
            if t.name.get_ref().trim().is_empty() {
                c.at(t.name.span(), format!("tenant \"{id}\" needs a name"));
            }
            let index = tenants.len();
            // A tenant with no keys cannot call (all its keys revoked, say); its jobs' webhooks are still delivered.
            for k in t.keys.get_ref() {
                let digest = k.get_ref().strip_prefix("sha256:").filter(|h| h.len() == 64).and_then(|h| {
                    let mut d = [0u8; 32];
                    for (i, byte) in d.iter_mut().enumerate() {
                        *byte = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
                    }
                    Some(d)
                });
                match digest {
                    None => c.at(
                        k.span(),
                        "a key is written as its digest, \"sha256:\" and 64 hex digits (assay tenants key prints a new key and its digest; never the key itself)",
                    ),
                    Some(d) => match key_owner.get(&d) {
                        Some(owner) => c.at(k.span(), format!("this key already belongs to tenant \"{owner}\": a key belongs to one tenant")),
                        None => {
                            key_owner.insert(d, id.clone());
                            keys.push((d, index));
                        }
                    },
                }
            }
            let segments: Vec<String> = t.segments.get_ref().iter().map(|s| s.get_ref().clone()).collect();
            if segments.is_empty() {
                c.at(
                    t.segments.span(),
                    format!("tenant \"{id}\" needs at least one segment (the first is its default)"),
                );
            }
            for (i, s) in t.segments.get_ref().iter().enumerate() {
                if segments[..i].contains(s.get_ref()) {
                    c.at(s.span(), format!("segment \"{}\" appears twice", s.get_ref()));
                }
            }
            let positive = |c: &mut Checker, v: &Option<At<u32>>, what: &str| {
                v.as_ref().and_then(|v| {
                    if *v.get_ref() == 0 {
                        c.at(v.span(), format!("{what} must be at least 1 (leave it out for no limit)"));
                        None
                    } else {
                        Some(*v.get_ref())
                    }
                })
            };
            let rate_per_minute = positive(&mut c, &t.rate_per_minute, "rate_per_minute");
            let max_in_flight = positive(&mut c, &t.max_in_flight, "max_in_flight");
            let webhook = t.webhook.as_ref().and_then(|w| webhook(&mut c, w.get_ref(), allow_private_network));
            by_id.insert(id.clone(), index);
            tenants.push(Arc::new(Tenant {
                id,
                name: t.name.get_ref().clone(),
                segments,
                rate_per_minute,
                max_in_flight,
                webhook,
            }));
        }
        if !c.problems.is_empty() {
            return Err(fail(c));
        }
        Ok(Tenants {
            version: format!("{:x}", Sha256::digest(text.as_bytes())),
            allow_private_network,
            webhooks,
            tenants,
            keys,
            by_id,
        })
    }

    /// The tenant a presented key belongs to. Every digest is compared, all bytes of each, whatever matches.
    pub fn identify(&self, presented: &str) -> Option<Arc<Tenant>> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (d, index) in &self.keys {
            if digest_eq(d, &digest) && found.is_none() {
                found = Some(*index);
            }
        }
        found.map(|i| self.tenants[i].clone())
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.by_id.get(id).map(|i| &self.tenants[*i])
    }

    pub fn all(&self) -> &[Arc<Tenant>] {
        &self.tenants
    }
}

fn webhook(c: &mut Checker, w: &WebhookEntry, allow_private_network: bool) -> Option<Webhook> {
    let url = match url::Url::parse(w.url.get_ref()) {
        Err(e) => {
            c.at(w.url.span(), format!("webhook url \"{}\" is not a URL: {e}", w.url.get_ref()));
            None
        }
        Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && allow_private_network) => {
            if u.host().is_none() || !u.username().is_empty() || u.password().is_some() {
                c.at(w.url.span(), "a webhook url needs a host and no user name or password in it");
                None
            } else {
                Some(u)
            }
        }
        Ok(u) => {
            c.at(
                w.url.span(),
                format!(
                    "webhook url scheme \"{}\" is not allowed: https only (plain http only with allow_private_network = true)",
                    u.scheme()
                ),
            );
            None
        }
    };
    let secret = w.secret.get_ref();
    let bytes = secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .filter(|b| (24..=64).contains(&b.len()));
    if bytes.is_none() {
        c.at(
            w.secret.span(),
            "a webhook secret is \"whsec_\" and 24 to 64 bytes in base64 (assay tenants secret prints a new one)",
        );
    }
    let mut events = vec![Event::Done, Event::Failed];
    if let Some(e) = &w.events {
        events.clear();
        for name in e.get_ref() {
            match Event::parse(name.get_ref()) {
                Some(ev) if !events.contains(&ev) => events.push(ev),
                Some(_) => c.at(name.span(), format!("event \"{}\" appears twice", name.get_ref())),
                None => {
                    c.at(name.span(), format!("unknown event \"{}\": expected running, done, failed", name.get_ref()))
                }
            }
        }
        if e.get_ref().is_empty() {
            c.at(e.span(), "events needs at least one of running, done, failed (or leave the webhook out)");
        }
    }
    Some(Webhook { url: url?, secret: Secret { text: secret.clone(), bytes: bytes? }, events })
}

/// The tenants file in force, reloaded when it changes (its directory is watched, as a ConfigMap mount
/// needs); a broken edit is refused and the last good file stays.
pub type TenantsWatcher = pricing_rules::FileWatcher<Tenants>;

/// Loads `path` and watches it.
pub fn watch(
    path: &Path,
    debounce: Duration,
    poll: Duration,
) -> Result<TenantsWatcher, pricing_rules::WatchError<TenantsError>> {
    let file: PathBuf = path.to_owned();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    pricing_rules::FileWatcher::watch(&dir, debounce, poll, move || Tenants::load(&file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(key: &str) -> String {
        format!(
            r#"format = 1

[webhooks]
retry_secs = [0, 1, 2]
timeout_secs = 3

[[tenant]]
id = "storefront"
name = "Web shop (retail)"
keys = ["{}"]
segments = ["b2c"]
rate_per_minute = 600
max_in_flight = 50

[tenant.webhook]
url = "https://shop.example/hooks/assay"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

[[tenant]]
id = "trade"
name = "Trade"
keys = []
segments = ["b2b", "b2c"]
"#,
            key_digest(key)
        )
    }

    #[test]
    fn a_valid_file_loads_and_keys_name_their_tenant() {
        let text = example("alpha-key-0123456789")
            .replace("keys = []", &format!("keys = [\"{}\"]", key_digest("beta-key-0123456789")));
        let t = Tenants::parse("tenants.toml", &text).expect("valid");
        assert_eq!(t.identify("alpha-key-0123456789").map(|t| t.id.clone()).as_deref(), Some("storefront"));
        assert_eq!(t.identify("beta-key-0123456789").map(|t| t.id.clone()).as_deref(), Some("trade"));
        assert!(t.identify("alpha-key-012345678").is_none());
        let s = t.get("storefront").expect("storefront");
        assert_eq!((s.rate_per_minute, s.max_in_flight), (Some(600), Some(50)));
        let w = s.webhook.as_ref().expect("webhook");
        assert_eq!(w.events, vec![Event::Done, Event::Failed]);
        assert_eq!(w.secret.bytes().len(), 24);
        assert!(!format!("{w:?}").contains("MfKQ"));
        assert_eq!(t.webhooks.retry, vec![Duration::ZERO, Duration::from_secs(1), Duration::from_secs(2)]);
        assert_eq!(t.get("trade").expect("trade").segments[0], "b2b");
        assert!(!t.allow_private_network);
    }

    #[test]
    fn every_problem_is_located() {
        let text = example("k")
            .replace("https://shop.example", "http://127.0.0.1:9")
            .replace("segments = [\"b2c\"]", "segments = []")
            .replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "hunter2")
            .replace("keys = []", "keys = [\"alpha\"]")
            .replace("timeout_secs = 3", "timeout_secs = 0");
        let e = Tenants::parse("tenants.toml", &text).unwrap_err();
        let shown = e.to_string();
        assert_eq!(e.problems.len(), 5, "{shown}");
        assert!(shown.contains("tenants.toml:5:16: timeout_secs 0 is not from 1 to 300"), "{shown}");
        assert!(shown.contains("tenants.toml:11:12: tenant \"storefront\" needs at least one segment"), "{shown}");
        assert!(shown.contains("scheme \"http\" is not allowed"), "{shown}");
        assert!(shown.contains("a webhook secret is \"whsec_\""), "{shown}");
        assert!(shown.contains("a key is written as its digest"), "{shown}");
        // Plain http to a private address is allowed when the operator says so.
        let text = example("k")
            .replace("format = 1", "format = 1\nallow_private_network = true")
            .replace("https://shop.example", "http://127.0.0.1:9");
        assert!(Tenants::parse("t", &text).expect("allowed").allow_private_network);
    }

    #[test]
    fn a_key_belongs_to_one_tenant_and_ids_are_unique() {
        let text = example("same")
            .replace("keys = []", &format!("keys = [\"{}\"]", key_digest("same")))
            .replace("id = \"trade\"", "id = \"storefront\"");
        let shown = Tenants::parse("t", &text).unwrap_err().to_string();
        assert!(shown.contains("already belongs to tenant \"storefront\""), "{shown}");
        assert!(shown.contains("tenant \"storefront\" appears twice"), "{shown}");
        let shown = Tenants::parse("t", "format = 2\n").unwrap_err().to_string();
        assert!(shown.contains("t:1:10: format 2 is not 1"), "{shown}");
        let shown = Tenants::parse("t", "format = 1\n[[tenant]]\nid = \"a\"\ncolour = 1\n").unwrap_err().to_string();
        assert!(shown.contains("t:4:1: unknown field `colour`"), "{shown}");
    }

    #[test]
    fn new_keys_and_secrets_are_valid_and_distinct() {
        let (k1, d1) = new_key();
        let (k2, _) = new_key();
        assert_ne!(k1, k2);
        assert_eq!(d1, key_digest(&k1));
        let text = format!("format = 1\n[[tenant]]\nid = \"a\"\nname = \"A\"\nkeys = [\"{d1}\"]\nsegments = [\"b2c\"]\n[tenant.webhook]\nurl = \"https://x.example/\"\nsecret = \"{}\"\n", new_secret());
        let t = Tenants::parse("t", &text).expect("valid");
        assert_eq!(t.identify(&k1).expect("found").id, "a");
        assert_eq!(t.all()[0].webhook.as_ref().expect("hook").secret.bytes().len(), 32);
    }
}

/// Where a service's tenants come from: a fixed file (tests) or a watched one.
#[derive(Debug, Clone)]
pub enum TenantsSource {
    Fixed(Arc<Tenants>),
    Watched(Arc<TenantsWatcher>),
}

impl TenantsSource {
    /// The tenants in force now.
    pub fn current(&self) -> Arc<Tenants> {
        match self {
            TenantsSource::Fixed(t) => t.clone(),
            TenantsSource::Watched(w) => w.current(),
        }
    }

    /// How reloading has gone, for a watched file.
    pub fn reload_status(&self) -> Option<pricing_rules::ReloadStatus> {
        match self {
            TenantsSource::Fixed(_) => None,
            TenantsSource::Watched(w) => Some(w.status()),
        }
    }
}

impl From<Tenants> for TenantsSource {
    fn from(t: Tenants) -> TenantsSource {
        TenantsSource::Fixed(Arc::new(t))
    }
}
