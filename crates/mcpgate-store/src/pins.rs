//! Approved tool and prompt definitions (pins) shared by every replica: one document (the
//! pin file's text) and its version. A change is a compare-and-set on the version, so two
//! replicas approving at once never lose each other's pins: the loser re-reads and retries.

use redis::Script;

use crate::error::StoreError;
use crate::redis_store::RedisStore;

/// Sets the document only if its version is still the one the writer read.
const CAS: &str = r"
local v = tonumber(redis.call('GET', KEYS[2]) or '0')
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], v + 1)
return 1
";

impl RedisStore {
    /// The stored pin document and its version (`None`: nothing stored yet, version 0).
    pub async fn load_pins(&self) -> Result<(Option<String>, u64), StoreError> {
        let (text, version): (Option<String>, Option<u64>) = self.run(redis::cmd("MGET").arg(self.key("pins")).arg(self.key("pins:v"))).await?;
        Ok((text, version.unwrap_or(0)))
    }

    /// Stores `text` if the document is still at `version`; false when another writer was first.
    pub async fn replace_pins(&self, version: u64, text: &str) -> Result<bool, StoreError> {
        let script = Script::new(CAS);
        let mut inv = script.key(self.key("pins"));
        inv.key(self.key("pins:v")).arg(version).arg(text);
        let done: i64 = self.script(inv).await?;
        Ok(done == 1)
    }
}
