//! Per-user limits on work in progress, counted in Postgres so that they
//! hold however many requests arrive at once and whichever companion they
//! reach (db/app/83_per_user_limits.sql).
//!
//! Answers being written are counted in run slots ([`RunSlots`]): a slot is
//! taken when a question is accepted and given back when its run has been
//! persisted, however it ended. A slot is a row held under a lease that this
//! companion renews while the run goes on, so the slots of a companion that
//! dies free themselves when their lease runs out. (Uploads in flight are
//! counted when a document is registered, [`crate::documents`].)

use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::platform::{Auth, Platform, PlatformError};

/// Seconds a client is told to wait when a user has too many answers running.
pub const RUN_RETRY_AFTER_SECS: u64 = 5;
/// How long a slot outlives the last renewal of its lease: how long a dead
/// companion's answers keep counting against their users.
const SLOT_LEASE: Duration = Duration::from_secs(60);

/// Takes run slots for this companion.
#[derive(Clone)]
pub struct RunSlots {
    platform: Platform,
    max: usize,
    holder: String,
}

/// A taken slot. [`RunSlot::release`] gives it back; dropping it does too,
/// in the background.
pub struct RunSlot {
    id: Uuid,
    platform: Platform,
    keeper: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSlot").field("id", &self.id).finish()
    }
}

impl RunSlots {
    /// Slots of at most `max` answers per user, taken in the name of
    /// `holder` (this companion's worker id).
    pub fn new(platform: Platform, max: usize, holder: String) -> RunSlots {
        RunSlots {
            platform,
            max,
            holder,
        }
    }

    /// How many answers a user may have being written at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The name slots are taken under (this companion's worker id).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// A slot's lease, in seconds: renewed every third of it.
    pub fn lease_seconds(&self) -> u64 {
        SLOT_LEASE.as_secs()
    }

    /// Holds slot `id`, taken in the database under [`RunSlots::holder`] by
    /// another call (`begin_chat`, db/app/98_answer_batches.sql), as
    /// [`RunSlots::take`] holds the ones it takes: renewed while the run goes
    /// on, given back when released or dropped.
    pub fn adopt(&self, id: Uuid) -> RunSlot {
        RunSlot {
            id,
            keeper: Some(tokio::spawn(keep(self.platform.clone(), id))),
            platform: self.platform.clone(),
        }
    }

    /// A slot for `user`, or `None` when they already have `max` answers
    /// being written on any companion.
    pub async fn take(&self, user: Uuid) -> Result<Option<RunSlot>, PlatformError> {
        let slot: Option<Uuid> = self
            .platform
            .rpc(
                Auth::Service,
                "take_run_slot",
                &json!({"owner_id": user, "holder": self.holder, "max_running": self.max,
                        "lease_seconds": SLOT_LEASE.as_secs()}),
            )
            .await?;
        Ok(slot.map(|id| self.adopt(id)))
    }
}

/// Renews the slot's lease every third of it while the run goes on.
async fn keep(platform: Platform, id: Uuid) {
    loop {
        tokio::time::sleep(SLOT_LEASE / 3).await;
        let renewed: Result<bool, PlatformError> = platform
            .rpc(
                Auth::Service,
                "renew_run_slot",
                &json!({"slot_id": id, "lease_seconds": SLOT_LEASE.as_secs()}),
            )
            .await;
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(slot = %id, "a run slot expired while its answer was written");
                return;
            }
            Err(err) => tracing::warn!(slot = %id, error = %err, "could not renew a run slot"),
        }
    }
}

async fn release(platform: &Platform, id: Uuid) {
    let released: Result<serde_json::Value, PlatformError> = platform
        .rpc(Auth::Service, "release_run_slot", &json!({"slot_id": id}))
        .await;
    if let Err(err) = released {
        tracing::warn!(slot = %id, error = %err, "could not give back a run slot (its lease will end it)");
    }
}

impl RunSlot {
    /// The slot's row in `private.run_slots`.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Lets go of a slot the database has already given back (with the
    /// answer's final row, `finish_chat_answer`): its lease is no longer
    /// renewed, and nothing more is sent.
    pub fn released_elsewhere(mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
    }

    /// Gives the slot back and waits until the database has it: a client
    /// that sees its answer end may ask again at once, on any companion.
    pub async fn release(mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        release(&self.platform, self.id).await;
    }
}

impl Drop for RunSlot {
    fn drop(&mut self) {
        let Some(keeper) = self.keeper.take() else {
            return;
        };
        keeper.abort();
        let (platform, id) = (self.platform.clone(), self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { release(&platform, id).await });
        }
    }
}
