//! Where connectors may send requests (docs/contract.md "Outbound calls").
//!
//! An admin configures the URLs a connector calls, and the worker runs inside the cloud
//! account: without a rule, a connector could read the instance metadata service, the Lambda
//! runtime API on 127.0.0.1, or anything on the private network. The rule:
//! - `https` only; plain `http` to a loopback host named literally (`127.0.0.1`, `[::1]`,
//!   `localhost`), and only where loopback is allowed at all (local stacks and tests, through
//!   `IDLCM_ALLOW_LOOPBACK_CONNECTORS`; never in the deployed template);
//! - never link-local or metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::/32),
//!   unspecified, multicast or reserved ones;
//! - private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) only when the
//!   integration sets `allow_private_network`;
//! - a DNS name is checked when the configuration is saved and again at every connection
//!   (DNS can change): the outbound client's resolver refuses names that resolve to a refused
//!   address, so nothing is ever sent there; a DNS name never reaches loopback;
//! - no redirects (a secret header would follow them), no proxies (the proxy would resolve the
//!   name instead of us), and answers read up to [`MAX_ANSWER_BYTES`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::ConnectorError;

/// The largest app answer read; a longer body is cut (an error page) or refused (a success).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How long a save waits for a DNS answer before it accepts the name unchecked (the
/// connection-time check still applies).
const SAVE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// What an address is, for the egress rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    Public,
    Private,
    Loopback,
    /// Link-local, metadata, unspecified, multicast, broadcast, reserved: never reachable.
    Refused(&'static str),
}

pub fn classify_ip(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        AddrClass::Loopback
    } else if ip.is_link_local() {
        AddrClass::Refused("a link-local or instance metadata address")
    } else if ip.is_unspecified() || a == 0 {
        AddrClass::Refused("an unspecified address")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        AddrClass::Refused("a multicast, broadcast or reserved address")
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        AddrClass::Private
    } else {
        AddrClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(Ipv4Addr::new((seg[6] >> 8) as u8, seg[6] as u8, (seg[7] >> 8) as u8, seg[7] as u8));
    }
    if ip.is_loopback() {
        AddrClass::Loopback
    } else if seg[0] == 0xfd00 && seg[1] == 0x0ec2 {
        AddrClass::Refused("the instance metadata address")
    } else if seg[0] & 0xffc0 == 0xfe80 {
        AddrClass::Refused("a link-local address")
    } else if ip.is_unspecified() || ip.is_multicast() {
        AddrClass::Refused("an unspecified or multicast address")
    } else if seg[0] & 0xfe00 == 0xfc00 {
        AddrClass::Private
    } else {
        AddrClass::Public
    }
}

/// Which addresses outbound calls may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Loopback hosts named literally (local stacks and tests only).
    pub loopback: bool,
    /// Private ranges (an integration's `allow_private_network`).
    pub private: bool,
}

impl Policy {
    /// Whether an address may be reached; `named_literally` when the URL's host is the address
    /// itself or `localhost`, not a DNS name that resolved to it.
    pub fn allows(&self, ip: IpAddr, named_literally: bool) -> Result<(), String> {
        match classify_ip(ip) {
            AddrClass::Public => Ok(()),
            AddrClass::Private if self.private => Ok(()),
            AddrClass::Private => {
                Err(format!("{ip} is a private address (set allow_private_network on the integration to allow it)"))
            }
            AddrClass::Loopback if self.loopback && named_literally => Ok(()),
            AddrClass::Loopback if self.loopback => Err(format!("{ip} is a loopback address reached through DNS")),
            AddrClass::Loopback => Err(format!("{ip} is a loopback address")),
            AddrClass::Refused(what) => Err(format!("{ip} is {what}")),
        }
    }

    /// Checks a URL's scheme and, when its host is an address or `localhost`, the host.
    /// Returns the DNS name to resolve, if the host is one.
    pub fn check_url(&self, url: &str) -> Result<Option<String>, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in the URL are not allowed: use headers and a secret".into());
        }
        if !matches!(url.scheme(), "https" | "http") {
            return Err(format!("the scheme must be https, not '{}'", url.scheme()));
        }
        let host = url.host().ok_or("the URL has no host")?;
        let (literal, name) = match host {
            url::Host::Ipv4(ip) => (Some(IpAddr::V4(ip)), None),
            url::Host::Ipv6(ip) => (Some(IpAddr::V6(ip)), None),
            url::Host::Domain(d) if is_localhost(d) => (Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), None),
            url::Host::Domain(d) => (None, Some(d.trim_end_matches('.').to_ascii_lowercase())),
        };
        let loopback = literal.is_some_and(|ip| classify_ip(ip) == AddrClass::Loopback);
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => return Err("plain http is only for loopback (local stacks); use https".into()),
            other => return Err(format!("the scheme must be https, not '{other}'")),
        }
        if let Some(ip) = literal {
            self.allows(ip, true)?;
        }
        Ok(name)
    }

    /// [`Self::check_url`], then the addresses a DNS name has now (a name that does not
    /// resolve now is accepted: the connection-time check still applies).
    pub async fn check_url_now(&self, url: &str) -> Result<(), String> {
        let Some(name) = self.check_url(url)? else { return Ok(()) };
        let lookup = tokio::net::lookup_host((name.as_str(), 443));
        if let Ok(Ok(addrs)) = tokio::time::timeout(SAVE_LOOKUP_TIMEOUT, lookup).await {
            for addr in addrs {
                self.allows(addr.ip(), false).map_err(|why| format!("{name} resolves to {why}"))?;
            }
        }
        Ok(())
    }
}

fn is_localhost(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost")
}

/// The error a refused connection carries through reqwest and hyper, found again by
/// [`refused_in`] so that the job fails with it, permanently.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused by the outbound rule: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// The [`Refused`] somewhere in an error's source chain.
pub fn refused_in(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r.to_string());
        }
        source = e.source();
    }
    None
}

/// How names are looked up: the system resolver, or (tests) a fixed table.
#[derive(Clone, Default)]
enum Lookup {
    #[default]
    System,
    Fixed(Arc<HashMap<String, Vec<IpAddr>>>),
}

/// reqwest's resolver: looks a name up, and refuses it when any address is refused.
struct GuardedResolver {
    policy: Policy,
    lookup: Lookup,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let lookup = self.lookup.clone();
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let literal = is_localhost(&name);
            let addrs: Vec<SocketAddr> = match &lookup {
                Lookup::System => tokio::net::lookup_host((name.as_str(), 0)).await?.collect(),
                Lookup::Fixed(table) => {
                    table.get(&name).into_iter().flatten().map(|ip| SocketAddr::new(*ip, 0)).collect()
                }
            };
            if addrs.is_empty() {
                return Err(format!("{name} has no address").into());
            }
            for addr in &addrs {
                if let Err(why) = policy.allows(addr.ip(), literal) {
                    return Err(Box::new(Refused(format!("{name} resolves to {why}"))) as _);
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The outbound HTTP client of the connectors, with its policy. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    policy: Policy,
}

impl Outbound {
    pub fn new(policy: Policy) -> Outbound {
        Self::with_lookup(policy, Lookup::System)
    }

    /// A client whose DNS answers come from `hosts` (tests of what a name may resolve to).
    pub fn with_hosts(policy: Policy, hosts: &[(&str, IpAddr)]) -> Outbound {
        let mut table: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, ip) in hosts {
            table.entry(name.to_ascii_lowercase()).or_default().push(*ip);
        }
        Self::with_lookup(policy, Lookup::Fixed(Arc::new(table)))
    }

    fn with_lookup(policy: Policy, lookup: Lookup) -> Outbound {
        // Idempotent: a second install (tests, several clients) is refused and harmless.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy, lookup }))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Outbound { client, policy }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Starts a request to `url` after checking it against the policy (a refused URL is a
    /// permanent failure: nothing is sent).
    pub fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, ConnectorError> {
        self.policy.check_url(url).map_err(|why| super::permanent(format!("refused by the outbound rule: {why}")))?;
        Ok(super::request(&self.client, method, url))
    }
}

/// The outbound clients of the worker and the API: one per value of `allow_private_network`,
/// each built by the first call that needs it. Building one loads and parses the system's root
/// certificates, and the AWS SDK's client has loaded them once already at init: built at init,
/// the worker's init took 1.63 times that of a function with only the SDK clients (1.21 times
/// now); a job that calls no app (a fan-out page, a purge, a superseded job) never builds it
/// (BENCHMARKS.md "Init time"). A thread building it beside the init measured 1.50 times: it
/// competes for the CPU the init runs on.
pub struct OutboundClients {
    loopback: bool,
    public: OnceLock<Outbound>,
    private: OnceLock<Outbound>,
}

impl OutboundClients {
    /// `loopback`: whether connectors may call loopback hosts named literally (local only).
    pub fn new(loopback: bool) -> OutboundClients {
        OutboundClients { loopback, public: OnceLock::new(), private: OnceLock::new() }
    }

    /// Fixed DNS answers (tests).
    pub fn with_hosts(loopback: bool, hosts: &[(&str, IpAddr)]) -> OutboundClients {
        let (public, private) = (OnceLock::new(), OnceLock::new());
        let _ = public.set(Outbound::with_hosts(Policy { loopback, private: false }, hosts));
        let _ = private.set(Outbound::with_hosts(Policy { loopback, private: true }, hosts));
        OutboundClients { loopback, public, private }
    }

    pub fn for_integration(&self, allow_private_network: bool) -> Outbound {
        let loopback = self.loopback;
        if !allow_private_network {
            return self.public.get_or_init(|| Outbound::new(Policy { loopback, private: false })).clone();
        }
        self.private.get_or_init(|| Outbound::new(Policy { loopback, private: true })).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_classified() {
        for (addr, class) in [
            ("8.8.8.8", AddrClass::Public),
            ("2606:4700::1111", AddrClass::Public),
            ("10.1.2.3", AddrClass::Private),
            ("172.31.0.1", AddrClass::Private),
            ("192.168.1.1", AddrClass::Private),
            ("100.64.0.1", AddrClass::Private),
            ("fd12::1", AddrClass::Private),
            ("127.0.0.1", AddrClass::Loopback),
            ("127.8.9.10", AddrClass::Loopback),
            ("::1", AddrClass::Loopback),
            ("::ffff:127.0.0.1", AddrClass::Loopback),
        ] {
            assert_eq!(classify_ip(ip(addr)), class, "{addr}");
        }
        for refused in [
            "169.254.169.254",
            "169.254.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(matches!(classify_ip(ip(refused)), AddrClass::Refused(_)), "{refused}");
        }
        assert!(matches!(classify_ip(ip("::ffff:169.254.169.254")), AddrClass::Refused(_)));
        assert!(matches!(classify_ip(ip("64:ff9b::a9fe:a9fe")), AddrClass::Refused(_)), "NAT64 of the metadata IP");
    }

    #[test]
    fn urls_are_checked_by_scheme_and_literal_host() {
        let local = Policy { loopback: true, private: false };
        let deployed = Policy::default();
        assert_eq!(deployed.check_url("https://app.example.com/api").unwrap().as_deref(), Some("app.example.com"));
        assert_eq!(local.check_url("http://127.0.0.1:8080/x").unwrap(), None);
        assert_eq!(local.check_url("http://localhost:8080/x").unwrap(), None);
        assert!(deployed.check_url("http://127.0.0.1:9001/").unwrap_err().contains("loopback"));
        for (url, why) in [
            ("file:///etc/passwd", "scheme"),
            ("http://169.254.169.254/latest/meta-data/", "plain http"),
            ("https://169.254.169.254/latest/meta-data/", "link-local"),
            ("https://[fd00:ec2::254]/", "metadata"),
            // The URL parser reads numeric hosts as IPv4, as browsers do.
            ("https://2852039166/", "link-local"),
            ("https://0xa9.0xfe.0xa9.0xfe/", "link-local"),
            ("https://[::ffff:a9fe:a9fe]/", "link-local"),
            ("https://10.0.0.5/", "allow_private_network"),
            ("http://app.example.com/", "plain http"),
            ("https://user:pw@app.example.com/", "credentials"),
            ("gopher://app.example.com/", "scheme"),
            ("not a url", "not a URL"),
        ] {
            let err = local.check_url(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
        let private = Policy { loopback: false, private: true };
        assert!(private.check_url("https://10.0.0.5/").is_ok());
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_refused_address_is_never_connected() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
        let hosts = [("rebind.test", ip("127.0.0.1")), ("metadata.test", ip("169.254.169.254"))];
        let out = Outbound::with_hosts(Policy { loopback: true, private: false }, &hosts);
        for name in ["rebind.test", "metadata.test"] {
            // https would be required for a DNS name; the check under test is the resolver's.
            let builder = super::super::request(&out.client, reqwest::Method::GET, &format!("http://{name}:{port}/"));
            let err = builder.send().await.unwrap_err();
            let why = refused_in(&err).unwrap_or_else(|| panic!("{name}: {err:?}"));
            assert!(why.contains(name), "{why}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!accepted.is_finished(), "nothing connected to the loopback listener");
        accepted.abort();
    }
}
