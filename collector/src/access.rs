//! Who may do what: a request's credentials (a bearer token, the UI's cookie, or a
//! user named by a trusted single sign-on proxy) to one tenant, for writing or for
//! reading; and each tenant's rate limits.
//!
//! Tokens are compared in constant time against every configured token (no early
//! exit, so the time says nothing about which one nearly matched), and never
//! logged. The table is swapped whole when the tokens file is read again; the set
//! of tenants is fixed at start (their storage is opened then).

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use crate::config::{self, Tenant};
use crate::metrics::{Metrics, TenantFigures};
use crate::model::Signal;

/// The header that picks a tenant (the Loki and Tempo convention).
pub const ORG_ID_HEADER: &str = "x-scope-orgid";

/// The token of an `Authorization: Bearer <token>` value (the scheme in any case).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Send records (OTLP).
    Ingest,
    /// Read them (query API, UI, `/metrics`).
    Query,
}

impl Role {
    fn verb(self) -> &'static str {
        match self {
            Role::Ingest => "write",
            Role::Query => "read",
        }
    }
}

/// The index of a tenant among [`AccessControl::names`]; 0 is `default`.
pub type TenantId = usize;

/// What a request presents.
#[derive(Debug, Default, Clone, Copy)]
pub struct Credentials<'a> {
    /// `Authorization: Bearer <token>`, or the UI's sign-in cookie.
    pub token: Option<&'a str>,
    /// The user named by `--auth-proxy-header`, only when the request came from
    /// one of `--trusted-proxies`.
    pub proxy_user: Option<&'a str>,
    /// `X-Scope-OrgID`: the tenant asked for, where a token reaches several.
    pub org_id: Option<&'a str>,
}

/// Why a request is refused. The messages never repeat the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("missing token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("invalid token")]
    Invalid,
    #[error("this token may not {0}: use a token configured for that")]
    WrongRole(&'static str),
    #[error("this token does not reach tenant '{0}'")]
    NotYourTenant(String),
    #[error("this token reaches several tenants ({0}): choose one with X-Scope-OrgID")]
    Ambiguous(String),
}

impl Denied {
    /// 401 (who are you?) or 403 (you may not): [`Denied::WrongRole`] and
    /// [`Denied::NotYourTenant`] are refusals of someone known.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Denied::WrongRole(_) | Denied::NotYourTenant(_))
    }

    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Denied::Ambiguous(_))
    }
}

/// Over a tenant's rate: refused without reading the request, with when to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant '{tenant}' is over its limit of {limit}; retry in {}s", retry_after.as_secs().max(1))]
pub struct Throttled {
    pub tenant: String,
    pub limit: String,
    pub retry_after: Duration,
}

/// Every tenant, their tokens and limits.
pub struct AccessControl {
    table: RwLock<Arc<config::Access>>,
    names: Vec<String>,
    limiters: Vec<Limiter>,
    figures: Vec<Arc<TenantFigures>>,
}

impl AccessControl {
    /// The tenants of `access`, their figures registered in `metrics`.
    pub fn new(access: config::Access, metrics: &Metrics) -> AccessControl {
        let names: Vec<String> = access.tenants.iter().map(|t| t.name.clone()).collect();
        let limiters = access.tenants.iter().map(Limiter::new).collect();
        let figures = names
            .iter()
            .map(|name| metrics.register_tenant(name))
            .collect();
        AccessControl {
            table: RwLock::new(Arc::new(access)),
            names,
            limiters,
            figures,
        }
    }

    fn table(&self) -> Arc<config::Access> {
        Arc::clone(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The tenants' names, in [`TenantId`] order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Takes tokens, users and limits read again. Tenants cannot come or go while
    /// running (their storage is opened at start): such a change is refused whole.
    pub fn replace(&self, access: config::Access) -> Result<(), String> {
        let names: Vec<&String> = access.tenants.iter().map(|t| &t.name).collect();
        if names != self.names.iter().collect::<Vec<_>>() {
            return Err(format!(
                "the tenants changed ({} now, {} configured): restart to add or remove tenants; keeping the running tokens",
                self.names.join(", "),
                names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        for (limiter, tenant) in self.limiters.iter().zip(&access.tenants) {
            limiter.set_limits(tenant);
        }
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(access);
        Ok(())
    }

    /// A query token of `tenant`, as it is now: what one node of a cluster shows
    /// another to ask for that tenant's data. `None` when it has none.
    pub fn query_token(&self, tenant: TenantId) -> Option<String> {
        self.table()
            .tenants
            .get(tenant)
            .and_then(|tenant| tenant.query_tokens.first().cloned())
    }

    /// Whether `role` needs credentials at all.
    pub fn protects(&self, role: Role) -> bool {
        let table = self.table();
        match role {
            Role::Ingest => table.ingest_protected(),
            Role::Query => table.query_protected(),
        }
    }

    /// The proxy header to believe from `peer`, if any.
    pub fn proxy_header_from(&self, peer: IpAddr) -> Option<String> {
        let table = self.table();
        let header = table.proxy_header.as_ref()?;
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        table
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer))
            .then(|| header.clone())
    }

    /// The tenant `credentials` may `role`, or why not. Without any credential
    /// configured for `role`, everything is the tenant `default`.
    pub fn authorize(&self, role: Role, credentials: Credentials<'_>) -> Result<TenantId, Denied> {
        let table = self.table();
        let protected = match role {
            Role::Ingest => table.ingest_protected(),
            Role::Query => table.query_protected(),
        };
        if !protected {
            return Ok(0);
        }
        let reached: Vec<TenantId> = if let Some(token) = credentials.token {
            let mut reached = Vec::new();
            let mut other_role = false;
            for (id, tenant) in table.tenants.iter().enumerate() {
                let (mine, others) = match role {
                    Role::Ingest => (&tenant.ingest_tokens, &tenant.query_tokens),
                    Role::Query => (&tenant.query_tokens, &tenant.ingest_tokens),
                };
                if any_equal(mine, token) {
                    reached.push(id);
                }
                other_role |= any_equal(others, token);
            }
            if reached.is_empty() {
                return Err(if other_role {
                    Denied::WrongRole(role.verb())
                } else {
                    Denied::Invalid
                });
            }
            reached
        } else if let (Some(user), Role::Query) = (credentials.proxy_user, role) {
            users_tenants(&table.tenants, user)
        } else {
            return Err(Denied::Missing);
        };
        if reached.is_empty() {
            return Err(Denied::Invalid);
        }
        match credentials.org_id.map(str::trim).filter(|o| !o.is_empty()) {
            Some(org) => reached
                .iter()
                .copied()
                .find(|id| self.names[*id] == org)
                .ok_or_else(|| Denied::NotYourTenant(org.to_string())),
            None if reached.len() == 1 => Ok(reached[0]),
            None => Err(Denied::Ambiguous(
                reached
                    .iter()
                    .map(|id| self.names[*id].as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// Whether `tenant` may send now; refused without reading what it sends.
    pub fn admit(&self, tenant: TenantId, now_ns: u64) -> Result<(), Throttled> {
        let result = self.limiters[tenant].admit(now_ns, &self.names[tenant]);
        if result.is_err() {
            self.figures[tenant]
                .throttled
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Counts what `tenant` sent and had accepted against its limits.
    pub fn charge(&self, tenant: TenantId, signal: Signal, records: u64, bytes: u64, now_ns: u64) {
        self.limiters[tenant].charge(records, bytes, now_ns);
        let figures = &self.figures[tenant];
        figures.records[signal.ordinal()].fetch_add(records, Ordering::Relaxed);
        figures.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Whether `given` equals any of `tokens`, in time that depends only on the
/// lengths of the configured tokens.
fn any_equal(tokens: &[String], given: &str) -> bool {
    tokens.iter().fold(false, |found, token| {
        found | constant_time_eq(token.as_bytes(), given.as_bytes())
    })
}

/// Compares every byte of `expected` whatever the answer; the length of `given`
/// is not secret.
pub fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    let mut difference = (expected.len() ^ given.len()) as u64;
    for (i, byte) in expected.iter().enumerate() {
        let other = given.get(i).copied().unwrap_or(!byte);
        difference |= u64::from(byte ^ other);
    }
    std::hint::black_box(difference) == 0
}

/// Tenants whose `query_users` name `user`; if no tenant names any user, every
/// signed-in user reads `default`.
fn users_tenants(tenants: &[Tenant], user: &str) -> Vec<TenantId> {
    let user = user.trim().to_ascii_lowercase();
    if user.is_empty() {
        return Vec::new();
    }
    if tenants.iter().all(|t| t.query_users.is_empty()) {
        return vec![0];
    }
    tenants
        .iter()
        .enumerate()
        .filter(|(_, tenant)| {
            tenant.query_users.iter().any(|pattern| {
                let pattern = pattern.trim().to_ascii_lowercase();
                pattern == "*"
                    || pattern == user
                    || pattern
                        .strip_prefix('*')
                        .is_some_and(|domain| domain.starts_with('@') && user.ends_with(domain))
            })
        })
        .map(|(id, _)| id)
        .collect()
}

/// A tenant's rates: records per second as a bucket that may go into debt (one
/// request larger than a second's worth still passes, and the next wait for the
/// debt to be paid), and bytes per UTC day.
struct Limiter {
    state: Mutex<LimiterState>,
}

struct LimiterState {
    records_per_second: Option<u64>,
    bytes_per_day: Option<u64>,
    /// Records that may be sent now; negative: owed.
    credit: f64,
    last_ns: u64,
    day: u64,
    day_bytes: u64,
}

const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

impl Limiter {
    fn new(tenant: &Tenant) -> Limiter {
        Limiter {
            state: Mutex::new(LimiterState {
                records_per_second: tenant.max_records_per_second,
                bytes_per_day: tenant.max_bytes_per_day,
                credit: tenant.max_records_per_second.unwrap_or(0) as f64,
                last_ns: 0,
                day: 0,
                day_bytes: 0,
            }),
        }
    }

    fn set_limits(&self, tenant: &Tenant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.records_per_second = tenant.max_records_per_second;
        state.bytes_per_day = tenant.max_bytes_per_day;
    }

    fn admit(&self, now_ns: u64, tenant: &str) -> Result<(), Throttled> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.refill(now_ns);
        if let Some(per_day) = state.bytes_per_day {
            if state.day_bytes >= per_day {
                let until_midnight = NANOS_PER_DAY - now_ns % NANOS_PER_DAY;
                return Err(Throttled {
                    tenant: tenant.to_string(),
                    limit: format!("{per_day} bytes per day (UTC)"),
                    retry_after: Duration::from_nanos(until_midnight),
                });
            }
        }
        if let Some(per_second) = state.records_per_second {
            if state.credit <= 0.0 {
                let wait = (-state.credit + 1.0) / per_second as f64;
                return Err(Throttled {
                    tenant: tenant.to_string(),
                    limit: format!("{per_second} records per second"),
                    retry_after: Duration::from_secs_f64(wait.clamp(1.0, 3600.0)),
                });
            }
        }
        Ok(())
    }

    fn charge(&self, records: u64, bytes: u64, now_ns: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.refill(now_ns);
        state.credit -= records as f64;
        state.day_bytes = state.day_bytes.saturating_add(bytes);
    }
}

impl LimiterState {
    fn refill(&mut self, now_ns: u64) {
        let day = now_ns / NANOS_PER_DAY;
        if day != self.day {
            self.day = day;
            self.day_bytes = 0;
        }
        if let Some(per_second) = self.records_per_second {
            let elapsed = now_ns.saturating_sub(self.last_ns) as f64 / 1e9;
            // At most one second's worth saved up: the burst.
            self.credit = (self.credit + elapsed * per_second as f64).min(per_second as f64);
        }
        self.last_ns = self.last_ns.max(now_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Access, DEFAULT_TENANT};

    fn tenant(name: &str, ingest: &[&str], query: &[&str]) -> Tenant {
        Tenant {
            name: name.into(),
            ingest_tokens: ingest.iter().map(|t| t.to_string()).collect(),
            query_tokens: query.iter().map(|t| t.to_string()).collect(),
            query_users: Vec::new(),
            retention: Duration::from_secs(3600),
            max_records_per_second: None,
            max_bytes_per_day: None,
        }
    }

    fn control(tenants: Vec<Tenant>) -> AccessControl {
        let access = Access {
            tenants,
            proxy_header: None,
            trusted_proxies: Vec::new(),
        };
        AccessControl::new(access, &Metrics::default())
    }

    fn token(token: &str) -> Credentials<'_> {
        Credentials {
            token: Some(token),
            ..Credentials::default()
        }
    }

    const WRITE_A: &str = "write-a-0123456789";
    const READ_A: &str = "read-a-0123456789";
    const SHARED: &str = "read-both-0123456789";

    #[test]
    fn tokens_reach_their_tenant_for_their_role_only() {
        let access = control(vec![
            tenant(DEFAULT_TENANT, &[], &[]),
            tenant("a", &[WRITE_A], &[READ_A, SHARED]),
            tenant("b", &[], &[SHARED]),
        ]);
        assert_eq!(access.authorize(Role::Ingest, token(WRITE_A)), Ok(1));
        assert_eq!(access.authorize(Role::Query, token(READ_A)), Ok(1));
        assert_eq!(
            access.authorize(Role::Query, token(WRITE_A)),
            Err(Denied::WrongRole("read"))
        );
        assert_eq!(
            access.authorize(Role::Ingest, token(READ_A)),
            Err(Denied::WrongRole("write"))
        );
        assert_eq!(
            access.authorize(Role::Query, token("read-a-0123456780")),
            Err(Denied::Invalid)
        );
        assert_eq!(
            access.authorize(Role::Query, Credentials::default()),
            Err(Denied::Missing)
        );
        assert_eq!(
            access.authorize(Role::Query, token(SHARED)),
            Err(Denied::Ambiguous("a, b".into()))
        );
        let org = |org| Credentials {
            org_id: Some(org),
            ..token(SHARED)
        };
        assert_eq!(access.authorize(Role::Query, org("b")), Ok(2));
        assert_eq!(
            access.authorize(
                Role::Query,
                Credentials {
                    org_id: Some("b"),
                    ..token(READ_A)
                }
            ),
            Err(Denied::NotYourTenant("b".into()))
        );
        assert_eq!(
            access.authorize(Role::Query, org("default")),
            Err(Denied::NotYourTenant("default".into()))
        );
    }

    #[test]
    fn without_tokens_everything_is_the_default_tenant() {
        let access = control(vec![tenant(DEFAULT_TENANT, &[], &[])]);
        assert_eq!(
            access.authorize(Role::Ingest, Credentials::default()),
            Ok(0)
        );
        assert_eq!(
            access.authorize(Role::Query, token("anything-at-all-here")),
            Ok(0)
        );
        // Reading can be protected while writing stays open (on loopback).
        let access = control(vec![tenant(DEFAULT_TENANT, &[], &[READ_A])]);
        assert_eq!(
            access.authorize(Role::Ingest, Credentials::default()),
            Ok(0)
        );
        assert_eq!(
            access.authorize(Role::Query, Credentials::default()),
            Err(Denied::Missing)
        );
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abcdef", b"abcde"));
        assert!(!constant_time_eq(b"abcdef", b"abcdefg"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn proxy_users_reach_the_tenants_that_name_them() {
        let mut shop = tenant("shop", &[], &[]);
        shop.query_users = vec!["*@shop.example".into()];
        let mut ops = tenant("ops", &[], &[]);
        ops.query_users = vec!["alice@corp.example".into()];
        let tenants = vec![tenant(DEFAULT_TENANT, &[], &[]), shop, ops];
        let user = |user| Credentials {
            proxy_user: Some(user),
            ..Credentials::default()
        };
        assert_eq!(users_tenants(&tenants, "bob@shop.example"), vec![1]);
        assert_eq!(users_tenants(&tenants, "Alice@Corp.example"), vec![2]);
        assert!(users_tenants(&tenants, "eve@evilshop.example").is_empty());
        let access = AccessControl::new(
            Access {
                tenants,
                proxy_header: Some("x-forwarded-email".into()),
                trusted_proxies: vec!["10.0.0.0/8".parse().expect("cidr")],
            },
            &Metrics::default(),
        );
        assert_eq!(
            access.authorize(Role::Query, user("bob@shop.example")),
            Ok(1)
        );
        assert_eq!(
            access.authorize(Role::Query, user("eve@else.example")),
            Err(Denied::Invalid)
        );
        // A user named by a proxy never writes.
        assert_eq!(
            access.authorize(Role::Ingest, user("bob@shop.example")),
            Ok(0)
        );
        assert!(access
            .proxy_header_from("10.1.2.3".parse().expect("ip"))
            .is_some());
        assert!(access
            .proxy_header_from("::ffff:10.1.2.3".parse().expect("ip"))
            .is_some());
        assert!(access
            .proxy_header_from("192.168.1.1".parse().expect("ip"))
            .is_none());
    }

    #[test]
    fn records_per_second_allow_a_burst_then_ask_to_wait() {
        let mut limited = tenant(DEFAULT_TENANT, &[], &[]);
        limited.max_records_per_second = Some(1000);
        let access = control(vec![limited]);
        let second = 1_000_000_000u64;
        let t0 = 100 * second;
        assert_eq!(access.admit(0, t0), Ok(()));
        access.charge(0, Signal::Spans, 3000, 10, t0);
        let throttled = access.admit(0, t0 + second / 2).expect_err("in debt");
        assert!(
            throttled.retry_after >= Duration::from_secs(1),
            "{throttled:?}"
        );
        assert!(
            throttled.to_string().contains("1000 records per second"),
            "{throttled}"
        );
        // Three seconds pay the debt back.
        assert_eq!(access.admit(0, t0 + 3 * second), Ok(()));
    }

    #[test]
    fn bytes_per_day_reset_at_midnight_utc() {
        let mut limited = tenant(DEFAULT_TENANT, &[], &[]);
        limited.max_bytes_per_day = Some(1_000);
        let access = control(vec![limited]);
        let noon = 20_000 * NANOS_PER_DAY + NANOS_PER_DAY / 2;
        access.charge(0, Signal::Logs, 1, 1_500, noon);
        let throttled = access.admit(0, noon + 1).expect_err("over the day");
        assert_eq!(throttled.retry_after.as_secs(), 12 * 3600 - 1);
        assert_eq!(access.admit(0, noon + NANOS_PER_DAY / 2), Ok(()));
    }
}
