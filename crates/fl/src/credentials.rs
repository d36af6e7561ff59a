//! Who may speak for which worker. A run has one secret, the *run key*
//! (`<run dir>/token`), held by the aggregator and whoever prepared the run;
//! each worker gets only its own *worker credential*,
//! `w1.<worker id>.<HMAC-SHA256(run key, run id, worker id)>`, in its own folder.
//! The aggregator recomputes the MAC for the id a credential names, so it needs
//! no list of credentials, and a worker that leaks its credential lets an
//! attacker speak for that one worker only: it cannot forge another id's MAC
//! without the run key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{FlError, Result};

/// The prefix (and version) of worker credentials.
const PREFIX: &str = "w1";
/// Domain separation: a MAC made here is never valid for anything else.
const LABEL: &[u8] = b"bloginfer-fl worker credential v1";

/// Who a request comes from, as its bearer token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The holder of the run key (the launcher, the orchestrator, an operator):
    /// may read the run's status, but is no worker.
    Operator,
    /// The worker with this roster id.
    Worker(String),
}

fn mac(run_key: &str, run_id: &str, worker_id: &str) -> Option<Hmac<Sha256>> {
    // HMAC takes keys of any length (long ones are hashed), so this is always Some.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(run_key.as_bytes()).ok()?;
    for part in [LABEL, run_id.as_bytes(), worker_id.as_bytes()] {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") never collide.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    Some(mac)
}

/// The credential of worker `worker_id` of run `run_id`.
pub fn worker_credential(run_key: &str, run_id: &str, worker_id: &str) -> Result<String> {
    let tag = mac(run_key, run_id, worker_id)
        .ok_or_else(|| FlError::Config("cannot key the credential MAC".into()))?
        .finalize()
        .into_bytes();
    Ok(format!(
        "{PREFIX}.{worker_id}.{}",
        bloginfer_common::hex(&tag)
    ))
}

/// Who `presented` (a bearer token) proves to be, or `None` when it proves
/// nothing. Comparisons take the same time whatever the token holds.
pub fn authenticate(presented: &str, run_key: &str, run_id: &str) -> Option<Caller> {
    if let Some(rest) = presented.strip_prefix("w1.") {
        let (worker_id, tag) = rest.rsplit_once('.')?;
        if !crate::spec::valid_id(worker_id) {
            return None;
        }
        let tag = ::hex::decode(tag).ok().filter(|t| t.len() == 32)?;
        // `verify_slice` compares in constant time.
        return mac(run_key, run_id, worker_id)?
            .verify_slice(&tag)
            .ok()
            .map(|()| Caller::Worker(worker_id.to_string()));
    }
    bloginfer_common::constant_time_eq(presented.as_bytes(), run_key.as_bytes())
        .then_some(Caller::Operator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_proves_its_own_worker_only() {
        let key = "k".repeat(48);
        let zero = worker_credential(&key, "run-a", "0").expect("credential");
        assert_eq!(
            authenticate(&zero, &key, "run-a"),
            Some(Caller::Worker("0".into()))
        );
        // The same MAC under another id, another run or another key proves nothing.
        let forged = zero.replacen("w1.0.", "w1.1.", 1);
        assert_eq!(authenticate(&forged, &key, "run-a"), None);
        assert_eq!(authenticate(&zero, &key, "run-b"), None);
        assert_eq!(authenticate(&zero, &"x".repeat(48), "run-a"), None);
        assert_ne!(
            zero,
            worker_credential(&key, "run-a", "1").expect("credential")
        );
        assert_eq!(authenticate(&key, &key, "run-a"), Some(Caller::Operator));
        for junk in ["", "w1.", "w1.0", "w1.0.zz", "w1.../etc.00", "Bearer x"] {
            assert_eq!(authenticate(junk, &key, "run-a"), None, "{junk}");
        }
    }
}
