//! The rules a long-running process prices with: a fixed set, or a watched directory that reloads.

use std::sync::Arc;

use crate::{ReloadStatus, RuleSet, RulesWatcher};

/// Where the rules come from: fixed (the built-in copy, tests), or a watched directory that reloads.
#[derive(Debug, Clone)]
pub enum Rules {
    Fixed(Arc<RuleSet>),
    Watched(Arc<RulesWatcher>),
}

impl Rules {
    /// The rules in force now.
    pub fn current(&self) -> Arc<RuleSet> {
        match self {
            Rules::Fixed(r) => r.clone(),
            Rules::Watched(w) => w.current(),
        }
    }

    /// How reloading has gone, for rules from a watched directory.
    pub fn reload_status(&self) -> Option<ReloadStatus> {
        match self {
            Rules::Fixed(_) => None,
            Rules::Watched(w) => Some(w.status()),
        }
    }
}

impl From<RuleSet> for Rules {
    fn from(r: RuleSet) -> Rules {
        Rules::Fixed(Arc::new(r))
    }
}
