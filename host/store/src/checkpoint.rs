//! Signed checkpoints of the audit chain, kept outside the database, as
//! transparency logs do (Certificate Transparency, Sigstore's Rekor): whoever
//! can write the database can delete its last entries or rewrite the chain
//! and recompute every hash, but cannot sign a checkpoint of the result
//! without the key, which lives elsewhere. `aerie audit verify` checks the
//! chain against the latest checkpoint.
//!
//! A checkpoint is one JSON line appended to a file the operator chooses:
//! `{"entries", "head", "at", "key", "signature"}`, the signature an Ed25519
//! one (ed25519-dalek) over `aerie audit checkpoint v1\n{entries}\n{head}\n{at}\n`.

use std::io::Write as _;
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// A signed statement: the chain had `entries` entries, the last `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub entries: u64,
    pub head: String,
    pub at: String,
    /// The signer's public key, hex.
    pub key: String,
    /// Ed25519, hex.
    pub signature: String,
}

fn message(entries: u64, head: &str, at: &str) -> Vec<u8> {
    format!("aerie audit checkpoint v1\n{entries}\n{head}\n{at}\n").into_bytes()
}

/// A new signing key: (secret, public), each as hex.
pub fn generate_key() -> Result<(String, String), String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a key: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    Ok((
        hex::encode(key.to_bytes()),
        hex::encode(key.verifying_key().to_bytes()),
    ))
}

/// The signing key written as hex (as `aerie audit keygen` writes it).
pub fn signing_key(text: &str) -> Result<SigningKey, String> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the audit signing key is not 64 hex digits (as `aerie audit keygen` writes it)")?;
    Ok(SigningKey::from_bytes(&bytes))
}

impl Checkpoint {
    pub fn sign(key: &SigningKey, entries: u64, head: &str) -> Checkpoint {
        let at = aerie_engine::now();
        let signature = key.sign(&message(entries, head, &at));
        Checkpoint {
            entries,
            head: head.to_owned(),
            key: hex::encode(key.verifying_key().to_bytes()),
            signature: hex::encode(signature.to_bytes()),
            at,
        }
    }

    /// Whether `key` signed this checkpoint as it reads.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), String> {
        let refused = "its signature does not verify with the configured key";
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(refused)?;
        key.verify_strict(
            &message(self.entries, &self.head, &self.at),
            &Signature::from_bytes(&bytes),
        )
        .map_err(|_| refused.to_owned())
    }

    /// Appends the checkpoint to `path` as one JSON line.
    pub fn append(&self, path: &Path) -> Result<(), String> {
        let line = serde_json::to_string(self).map_err(|e| e.to_string())?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(file, "{line}").map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The last checkpoint in `path`; `None` when the file is missing or empty.
    pub fn latest(path: &Path) -> Result<Option<Checkpoint>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
            return Ok(None);
        };
        serde_json::from_str(line)
            .map(Some)
            .map_err(|e| format!("{}: the last checkpoint is not one: {e}", path.display()))
    }
}

/// How the chain stands against a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Its first `checkpoint.entries` entries are the ones signed.
    Extends,
    /// It has fewer entries (`entries`) than were signed: some were removed.
    Truncated { entries: u64 },
    /// The entry the checkpoint ends at has another hash: it was rewritten.
    Rewritten,
}

impl crate::Store {
    /// Whether the chain still extends `checkpoint` (two queries; the chain
    /// itself is checked by [`crate::Store::verify_audit`]).
    pub async fn standing(&self, checkpoint: &Checkpoint) -> crate::Result<Standing> {
        let (entries, _) = self.audit_head().await?;
        if entries < checkpoint.entries {
            return Ok(Standing::Truncated { entries });
        }
        let hash = self.audit_hash_at(checkpoint.entries).await?;
        Ok(if hash.as_deref() == Some(checkpoint.head.as_str()) {
            Standing::Extends
        } else {
            Standing::Rewritten
        })
    }
}

/// The audit trail checked as `aerie audit verify` and the API check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditCheck {
    pub intact: bool,
    /// Entries in the chain (when it is intact).
    pub entries: u64,
    /// The last entry's hash (when it is intact).
    pub last: Option<String>,
    /// What was found, as one sentence: what holds, or what does not.
    pub summary: String,
}

impl AuditCheck {
    fn refused(summary: String) -> AuditCheck {
        AuditCheck {
            intact: false,
            entries: 0,
            last: None,
            summary,
        }
    }
}

impl crate::Store {
    /// The chain, then, with `checkpointing` (the signing key's file and the
    /// checkpoints file), the chain against the latest signed checkpoint:
    /// fewer entries than it recorded is a truncation, another hash at its
    /// length a rewrite, no checkpoint or a bad signature a failure too. An
    /// error only when the store cannot be read.
    pub async fn check_audit(
        &self,
        checkpointing: Option<(&Path, &Path)>,
    ) -> crate::Result<AuditCheck> {
        let (entries, last) = match self.verify_audit().await? {
            crate::Verification::Intact { entries, last } => (entries, last),
            crate::Verification::Broken { seq, why } => {
                return Ok(AuditCheck::refused(format!(
                    "audit entry {seq} does not match: {why}"
                )));
            }
        };
        let intact = |summary: String| AuditCheck {
            intact: true,
            entries,
            last: Some(last.clone()),
            summary,
        };
        let Some((key_file, checkpoints)) = checkpointing else {
            return Ok(intact(format!(
                "audit trail intact: {entries} entries, last hash {last} (no [audit] checkpoints configured: truncation cannot be detected)"
            )));
        };
        let refuse = |why: String| {
            Ok(AuditCheck::refused(format!(
                "audit trail not verified: {why}"
            )))
        };
        let key = match std::fs::read_to_string(key_file)
            .map_err(|e| e.to_string())
            .and_then(|text| signing_key(&text))
        {
            Ok(key) => key.verifying_key(),
            Err(why) => return refuse(format!("the signing key {}: {why}", key_file.display())),
        };
        let checkpoint = match Checkpoint::latest(checkpoints) {
            Ok(Some(checkpoint)) => checkpoint,
            Ok(None) => {
                return refuse(format!(
                    "no checkpoint in {}: removed, or never written",
                    checkpoints.display()
                ));
            }
            Err(why) => return refuse(why),
        };
        if let Err(why) = checkpoint.verify(&key) {
            return refuse(format!("the checkpoint of {}: {why}", checkpoint.at));
        }
        match self.standing(&checkpoint).await? {
            Standing::Extends => Ok(intact(format!(
                "audit trail intact: {entries} entries, last hash {last}; the first {} match the checkpoint of {}",
                checkpoint.entries, checkpoint.at
            ))),
            Standing::Truncated { entries } => refuse(format!(
                "the trail has {entries} entries but the checkpoint of {} signed {}: entries were removed",
                checkpoint.at, checkpoint.entries
            )),
            Standing::Rewritten => refuse(format!(
                "entry {} is not the one the checkpoint of {} signed: the chain was rewritten",
                checkpoint.entries, checkpoint.at
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_with_its_key_only_and_only_as_signed() {
        let (secret, _) = generate_key().unwrap();
        let key = signing_key(&secret).unwrap();
        let checkpoint = Checkpoint::sign(&key, 7, "ab12");
        assert_eq!(checkpoint.verify(&key.verifying_key()), Ok(()));
        let (other, _) = generate_key().unwrap();
        let other = signing_key(&other).unwrap().verifying_key();
        assert!(checkpoint.verify(&other).is_err());
        let forged = Checkpoint {
            entries: 5,
            ..checkpoint.clone()
        };
        assert!(forged.verify(&key.verifying_key()).is_err());
        assert!(signing_key("not hex").is_err());
    }
}
