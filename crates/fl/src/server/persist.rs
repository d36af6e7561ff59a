//! The aggregator's durable state: one file written atomically after every
//! round (global weights, server-optimiser buffers, history), so a restarted
//! aggregator resumes at the next round instead of starting over.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{FlError, Result};
use crate::params::ParamSet;
use crate::protocol::RoundRecord;
use crate::strategy::{ServerOptimizer, ServerState};
use crate::wire::{self, WireDtype, WireSet};

const KIND: &str = "bloginfer-fl/state";
const FILE: &str = "aggregator-state.safetensors";

/// The scalar part of the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateHeader {
    /// Run id; a state of another run is never resumed.
    pub run_id: String,
    /// Last finished round (0: only the initial weights exist).
    pub completed_round: u32,
    /// Records of the finished rounds, which a resumed run's status keeps.
    pub history: Vec<RoundRecord>,
    /// The server optimiser's settings; its buffers are stored as tensors.
    pub optimizer: ServerOptimizer,
    /// Steps the server optimiser has taken (Adam's bias correction depends on them).
    pub optimizer_step: u64,
    /// Registered workers and their sample counts.
    pub clients: BTreeMap<String, u64>,
    /// Final registry version, once written.
    pub version: Option<String>,
}

/// The aggregator's state as read back from the state file, to resume a run.
pub struct SavedState {
    /// Everything but the tensors: run, rounds, history, optimiser, workers.
    pub header: StateHeader,
    /// Global weights after `completed_round`.
    pub global: ParamSet,
    /// The server optimiser with its momentum or moment buffers restored.
    pub server: ServerState,
}

/// Path of the state file in `dir`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

fn prefixed(prefix: &str, set: &ParamSet, into: &mut ParamSet) {
    for (name, p) in &set.0 {
        into.0.insert(format!("{prefix}/{name}"), p.clone());
    }
}

fn take_prefixed(prefix: &str, from: &ParamSet) -> Option<ParamSet> {
    let start = format!("{prefix}/");
    let set: BTreeMap<_, _> = from
        .0
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&start).map(|n| (n.to_string(), v.clone())))
        .collect();
    (!set.is_empty()).then_some(ParamSet(set))
}

/// Writes the state atomically (temporary file, fsync, rename).
pub fn save(
    dir: &Path,
    header: &StateHeader,
    global: &ParamSet,
    server: &ServerState,
) -> Result<()> {
    let mut all = ParamSet::default();
    prefixed("global", global, &mut all);
    if let Some(m) = &server.m {
        prefixed("m", m, &mut all);
    }
    if let Some(v) = &server.v {
        prefixed("v", v, &mut all);
    }
    let bytes = wire::encode(
        KIND,
        header,
        &WireSet::from_params(all, &[]),
        WireDtype::F32,
    )?;
    std::fs::create_dir_all(dir)
        .map_err(|e| FlError::io(format!("cannot create {}", dir.display()), e))?;
    bloginfer_common::write_atomic(&state_path(dir), &bytes)
        .map_err(|e| FlError::io(format!("cannot write {}", state_path(dir).display()), e))?;
    Ok(())
}

/// Reads the state in `dir`, if there is one.
pub fn load(dir: &Path) -> Result<Option<SavedState>> {
    let path = state_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FlError::io(format!("cannot read {}", path.display()), e)),
    };
    let (header, set): (StateHeader, WireSet) = wire::decode(&bytes, KIND)
        .map_err(|e| FlError::Invalid(format!("{}: {e}", path.display())))?;
    let all = set.to_params();
    let global = take_prefixed("global", &all)
        .ok_or_else(|| FlError::Invalid(format!("{} holds no global weights", path.display())))?;
    let server = ServerState {
        optimizer: header.optimizer,
        step: header.optimizer_step,
        m: take_prefixed("m", &all),
        v: take_prefixed("v", &all),
    };
    Ok(Some(SavedState {
        header,
        global,
        server,
    }))
}
