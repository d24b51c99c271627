//! Calls parked for a modern client's `input_required` round trip (a legacy backend asked the
//! client something), by the id sealed into their `requestState`. The registry holds them
//! opaque: `calls::bridge` owns their type and drives them. [`Resumes`] holds the retries this
//! replica forwarded to the replica holding their call, until its answer is back.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

/// A parked call, as `calls::bridge` made it.
pub type ParkedCall = Box<dyn Any + Send>;

/// The parked calls of this gateway process.
#[derive(Default)]
pub struct Bridges {
    parked: Mutex<HashMap<[u8; 16], ParkedCall>>,
}

impl Bridges {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], ParkedCall>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, id: [u8; 16], call: ParkedCall) {
        self.lock().insert(id, call);
    }

    /// Takes a parked call out (once: a replayed state finds nothing).
    pub fn take(&self, id: &[u8; 16]) -> Option<ParkedCall> {
        self.lock().remove(id)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One message of a forwarded retry's answer: the bytes, and whether it is the last.
pub type ResumeMessage = (bytes::Bytes, bool);

/// Retries forwarded to another replica, by correlation id: where its answer's messages go.
#[derive(Default)]
pub struct Resumes {
    waiting: Mutex<HashMap<String, tokio::sync::mpsc::Sender<ResumeMessage>>>,
}

impl Resumes {
    /// Waits for the answer to the retry `corr`.
    pub fn register(&self, corr: &str) -> tokio::sync::mpsc::Receiver<ResumeMessage> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(corr.to_owned(), tx);
        rx
    }

    /// One message of the answer to `corr`, from the replica holding the call.
    pub fn deliver(&self, corr: &str, message: String, last: bool) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = waiting.get(corr) else { return };
        // A client that stopped reading loses the rest; the call is not held up for it.
        if tx.try_send((bytes::Bytes::from(message), last)).is_err() || last {
            waiting.remove(corr);
        }
    }

    pub fn forget(&self, corr: &str) {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(corr);
    }
}
