//! Failed admin authentication, limited per client address: after
//! [`MAX_FAILURES`] failures within [`WINDOW`] a client is refused (429 with
//! `Retry-After`) until the window it started is over, whatever credential it
//! sends, so guessing the admin token (or an admin's session) is capped at
//! ten tries a minute per address.
//!
//! A guess of the admin token is counted and compared in one step, so a
//! burst of concurrent guesses is cut off after ten as surely as a sequence.
//! A session (a signed JWT, which cannot be guessed) is checked by the blog
//! and counted when the blog refuses it: an admin's dashboard may have many
//! session checks in flight at once, and none of them is a failure.
//!
//! The counts live in this process's memory: the orchestrator is one replica
//! (`Recreate`); a restart forgets them, which gives a guesser at most ten
//! more tries per restart. The table holds at most [`MAX_CLIENTS`] addresses;
//! when it is full of live windows, new addresses share one window, so
//! spreading guesses over many addresses buys nothing but that shared limit.
//! IPv6 clients are counted per /64, the block one subscriber usually gets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bloginfer_service::common::lock;

/// Failures a client may have within a window before it is refused.
pub const MAX_FAILURES: u32 = 10;
/// How long a window lasts from its first failure.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses counted apart; more share one window.
pub const MAX_CLIENTS: usize = 10_000;

/// Who a failure is counted against: an address (an IPv6 one cut to its
/// /64), or, with none known or the table full, everyone else together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// A known address.
    Addr(IpAddr),
    /// No address known, or one beyond [`MAX_CLIENTS`].
    Shared,
}

impl Client {
    /// The key for `addr`.
    pub fn of(addr: Option<IpAddr>) -> Self {
        match addr {
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::Addr(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    Self::Addr(IpAddr::V6(bits.into()))
                }
            },
            Some(v4) => Self::Addr(v4),
            None => Self::Shared,
        }
    }
}

struct Window {
    started: Instant,
    failures: u32,
}

/// Failure counts per client.
pub struct FailureLimit {
    clients: Mutex<HashMap<Client, Window>>,
}

impl Default for FailureLimit {
    fn default() -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
        }
    }
}

impl FailureLimit {
    /// Starts an attempt by `client`: refused with how long to wait while the
    /// client is locked out, otherwise counted as a failure at once (so that
    /// concurrent guesses cannot all get in while the first ones are still
    /// being checked) under the key returned, for [`Self::forgive`].
    pub fn attempt(&self, client: Client, now: Instant) -> Result<Client, Duration> {
        let mut clients = lock(&self.clients);
        let mut key = client;
        if !clients.contains_key(&key) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, w| now < w.started + WINDOW);
            if clients.len() >= MAX_CLIENTS {
                key = Client::Shared;
            }
        }
        let window = clients.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        let over = window.started + WINDOW;
        if now >= over {
            *window = Window {
                started: now,
                failures: 0,
            };
        } else if window.failures >= MAX_FAILURES {
            return Err(over - now);
        }
        window.failures = window.failures.saturating_add(1);
        Ok(key)
    }

    /// How long `client` must still wait, if it is locked out (nothing is counted).
    pub fn locked(&self, client: Client, now: Instant) -> Result<(), Duration> {
        let clients = lock(&self.clients);
        let key = if clients.contains_key(&client) {
            client
        } else {
            Client::Shared
        };
        match clients.get(&key) {
            Some(w) if now < w.started + WINDOW && w.failures >= MAX_FAILURES => {
                Err(w.started + WINDOW - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure that was found after the check (a refused session).
    pub fn fail(&self, client: Client, now: Instant) {
        // Counted like an attempt that is never forgiven; a client locked out
        // meanwhile stays locked out.
        let _ = self.attempt(client, now);
    }

    /// Takes back the failure counted under `key` for an attempt that
    /// succeeded (or could not be checked).
    pub fn forgive(&self, key: Client) {
        if let Some(window) = lock(&self.clients).get_mut(&key) {
            window.failures = window.failures.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_lock_a_client_out_until_its_window_ends() {
        let limit = FailureLimit::default();
        let start = Instant::now();
        let me = Client::of(Some("192.0.2.1".parse().expect("ip")));
        let other = Client::of(Some("192.0.2.2".parse().expect("ip")));
        for _ in 0..MAX_FAILURES {
            assert_eq!(limit.attempt(me, start), Ok(me));
        }
        let later = start + Duration::from_secs(20);
        assert_eq!(limit.attempt(me, later), Err(Duration::from_secs(40)));
        assert_eq!(limit.attempt(other, later), Ok(other));
        assert_eq!(limit.attempt(me, start + WINDOW), Ok(me), "a new window");
    }

    #[test]
    fn a_forgiven_attempt_does_not_count() {
        let limit = FailureLimit::default();
        let now = Instant::now();
        let me = Client::of(None);
        for _ in 0..3 * MAX_FAILURES {
            let key = limit.attempt(me, now).expect("not locked");
            limit.forgive(key);
        }
    }

    #[test]
    fn ipv6_clients_count_per_slash_64_and_a_full_table_shares_one_window() {
        let a = Client::of(Some("2001:db8:1:2::1".parse().expect("ip")));
        let b = Client::of(Some("2001:db8:1:2:ffff::9".parse().expect("ip")));
        assert_eq!(a, b);
        let mapped = Client::of(Some("::ffff:192.0.2.1".parse().expect("ip")));
        assert_eq!(mapped, Client::of(Some("192.0.2.1".parse().expect("ip"))));
        let limit = FailureLimit::default();
        let now = Instant::now();
        for i in 0..MAX_CLIENTS {
            let ip = IpAddr::V4(u32::try_from(i).expect("small").into());
            assert!(limit.attempt(Client::of(Some(ip)), now).is_ok());
        }
        let late = Client::of(Some("198.51.100.1".parse().expect("ip")));
        for _ in 0..MAX_FAILURES {
            assert_eq!(limit.attempt(late, now), Ok(Client::Shared));
        }
        assert!(limit.attempt(late, now).is_err());
        let early = Client::of(Some(IpAddr::V4(0.into())));
        assert_eq!(limit.attempt(early, now), Ok(early));
        assert_eq!(lock(&limit.clients).len(), MAX_CLIENTS + 1);
    }
}
