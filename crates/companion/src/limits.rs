//! Per-user limits on work in progress.
//!
//! Answers streaming at once are counted in this process ([`RunSlots`]): a
//! slot is taken when a question is accepted and given back when its run has
//! been persisted, however it ended. (Uploads are counted in Postgres, see
//! [`crate::documents`], so the limit holds across replicas.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// Seconds a client is told to wait when a user has too many answers running.
pub const RUN_RETRY_AFTER_SECS: u64 = 5;

/// Counts running answers per user.
#[derive(Debug, Clone)]
pub struct RunSlots {
    max: usize,
    running: Arc<Mutex<HashMap<Uuid, usize>>>,
}

/// A taken slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct RunSlot {
    user: Uuid,
    running: Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl RunSlots {
    pub fn new(max: usize) -> RunSlots {
        RunSlots {
            max,
            running: Arc::default(),
        }
    }

    /// A slot for `user`, or `None` when they already have `max` running.
    pub fn try_take(&self, user: Uuid) -> Option<RunSlot> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let count = running.entry(user).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(RunSlot {
            user,
            running: self.running.clone(),
        })
    }
}

impl Drop for RunSlot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = running.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_user_and_come_back() {
        let slots = RunSlots::new(2);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = slots.try_take(a).unwrap();
        let _second = slots.try_take(a).unwrap();
        assert!(slots.try_take(a).is_none());
        assert!(slots.try_take(b).is_some(), "another user is not limited");
        drop(first);
        assert!(slots.try_take(a).is_some());
    }
}
