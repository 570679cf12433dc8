//! An exporter's sending queue kept on disk (`sending_queue.storage`): each batch is written
//! to its own file before the request that brought it is answered, and deleted once exported
//! (or dropped for good). At start the files left by a previous run are exported first, so a
//! batch survives SIGKILL and a restart; one that was being sent at the time may be sent twice.
//!
//! A file is `OSQ1`, the signal (one byte), the body's length and CRC-32 (little-endian u32
//! each), then the batch as an OTLP export request in protobuf. Files are written under a
//! temporary name and renamed, so a crash mid-write leaves a `.tmp` file, which is removed; a
//! file that is truncated or fails its checksum is skipped, counted and removed, never retried.

use crate::config::ComponentId;
use crate::pipeline::{Payload, Signal};
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8; 4] = b"OSQ1";
const HEADER_LEN: usize = 4 + 1 + 4 + 4;

/// One exporter's directory of queued batches.
#[derive(Debug)]
pub struct PersistentQueue {
    directory: PathBuf,
    exporter: String,
    fsync: bool,
    next: AtomicU64,
}

/// A batch's file, removed once the batch has been exported.
#[derive(Debug)]
pub struct StoredBatch(PathBuf);

/// Why a queue file could not be read back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CorruptBatch {
    #[error("shorter than its header")]
    Truncated,
    #[error("not a queue file")]
    BadMagic,
    #[error("unknown signal {0}")]
    UnknownSignal(u8),
    #[error("body is {actual} bytes, header says {expected}")]
    Length { expected: usize, actual: usize },
    #[error("checksum mismatch")]
    Checksum,
    #[error("undecodable body: {0}")]
    Decode(String),
}

impl PersistentQueue {
    /// Opens (creating) the queue of `exporter` under the storage `root`, and lists the batches
    /// a previous run left, oldest first. Leftover temporary files are removed and counted.
    pub fn open(
        root: &Path,
        exporter: &ComponentId,
        fsync: bool,
    ) -> std::io::Result<(PersistentQueue, VecDeque<StoredBatch>)> {
        let name = exporter.to_string();
        let directory = root.join(directory_name(exporter));
        std::fs::create_dir_all(&directory)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&directory)? {
            let path = entry?.path();
            let sequence = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok());
            match (path.extension().and_then(|e| e.to_str()), sequence) {
                (Some("batch"), Some(sequence)) => found.push((sequence, path)),
                (Some("tmp"), _) => {
                    corrupt(&name, &path, "written only partly before a crash");
                    let _ = std::fs::remove_file(&path);
                }
                _ => {}
            }
        }
        found.sort();
        let next = found.last().map_or(0, |(sequence, _)| sequence + 1);
        if !found.is_empty() {
            tracing::info!(exporter = %name, batches = found.len(), directory = %directory.display(), "exporting batches queued before the last stop");
        }
        let recovered = found.into_iter().map(|(_, p)| StoredBatch(p)).collect();
        Ok((
            PersistentQueue {
                directory,
                exporter: name,
                fsync,
                next: AtomicU64::new(next),
            },
            recovered,
        ))
    }

    /// Writes `payload` to its own file; when this returns, a crash no longer loses it.
    pub async fn store(&self, payload: &Payload) -> std::io::Result<StoredBatch> {
        let bytes = encode(payload);
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.directory.join(format!("{sequence:020}.batch"));
        let temporary = path.with_extension("tmp");
        let fsync = self.fsync;
        let directory = self.directory.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            if fsync {
                file.sync_all()?;
            }
            std::fs::rename(&temporary, &path)?;
            if fsync {
                std::fs::File::open(&directory)?.sync_all()?;
            }
            Ok(StoredBatch(path))
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Reads a batch back; a corrupt one is counted, logged and removed.
    pub fn load(&self, batch: &StoredBatch) -> Option<Payload> {
        let result = std::fs::read(&batch.0)
            .map_err(|e| e.to_string())
            .and_then(|bytes| decode(&bytes).map_err(|e| e.to_string()));
        match result {
            Ok(payload) => {
                metrics::counter!("otelsidecar_exporter_queue_recovered_batches", "exporter" => self.exporter.clone()).increment(1);
                Some(payload)
            }
            Err(reason) => {
                corrupt(&self.exporter, &batch.0, &reason);
                let _ = std::fs::remove_file(&batch.0);
                None
            }
        }
    }

    /// The directory the batches are kept in.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// How many batches are on disk now, waiting to be exported (by this run or the next).
    pub fn kept_batches(&self) -> usize {
        std::fs::read_dir(&self.directory).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().extension().is_some_and(|e| e == "batch"))
                .count()
        })
    }

    /// Forgets an exported (or dropped) batch.
    pub fn remove(&self, batch: StoredBatch) {
        if let Err(error) = std::fs::remove_file(&batch.0) {
            tracing::warn!(exporter = %self.exporter, path = %batch.0.display(), %error, "cannot remove an exported batch; it will be sent again after a restart");
        }
    }
}

/// The directory of an exporter's queue: `exporter_<type>_<name>`, with `_` escaped in the type
/// and `/` in the name (`~5F`, `~2F`, and `~` itself as `~7E`), so that no two ids share one
/// (`awsxray/a/b` and `awsxray/a_b`, `otlp_http` and `otlp/http`). Types without `_` and names
/// without `/` keep the plain `exporter_awsxray_name`.
fn directory_name(exporter: &ComponentId) -> String {
    let escape =
        |text: &str, special: char, code: &str| text.replace('~', "~7E").replace(special, code);
    let mut name = format!("exporter_{}", escape(&exporter.kind, '_', "~5F"));
    if let Some(own) = &exporter.name {
        name.push('_');
        name.push_str(&escape(own, '/', "~2F"));
    }
    name
}

fn corrupt(exporter: &str, path: &Path, reason: &str) {
    crate::internal_events::QueuedBatchCorrupt {
        exporter,
        path,
        reason,
    }
    .emit();
}

/// A batch as a queue file.
pub fn encode(payload: &Payload) -> Vec<u8> {
    let signal = match payload.signal() {
        Signal::Traces => 0u8,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    };
    let body = payload.encode_export_request();
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.push(signal);
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

/// A queue file as a batch.
pub fn decode(bytes: &[u8]) -> Result<Payload, CorruptBatch> {
    if bytes.len() < HEADER_LEN {
        return Err(CorruptBatch::Truncated);
    }
    if &bytes[..4] != MAGIC {
        return Err(CorruptBatch::BadMagic);
    }
    let signal = match bytes[4] {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        2 => Signal::Logs,
        other => return Err(CorruptBatch::UnknownSignal(other)),
    };
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let (expected, checksum) = (word(5) as usize, word(9));
    let body = &bytes[HEADER_LEN..];
    if body.len() != expected {
        return Err(CorruptBatch::Length {
            expected,
            actual: body.len(),
        });
    }
    if crc32fast::hash(body) != checksum {
        return Err(CorruptBatch::Checksum);
    }
    Payload::decode_export_request(signal, body).map_err(|e| CorruptBatch::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::test_spans as spans;

    fn root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("pq-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        root
    }

    #[test]
    fn no_two_ids_share_a_queue_directory() {
        let name = |id: &str| directory_name(&ComponentId::parse(id).unwrap());
        assert_eq!(name("awsxray"), "exporter_awsxray");
        assert_eq!(name("awsxray/traces_a"), "exporter_awsxray_traces_a");
        let ids = [
            "awsxray/a/b",
            "awsxray/a_b",
            "awsxray/a",
            "awsxray/a/",
            "otlp_http",
            "otlp/http",
            "otlp_http/x",
            "otlp/http_x",
            "otlp/http/x",
            "awsxray/a~2Fb",
        ];
        let names: std::collections::BTreeSet<String> = ids
            .iter()
            .filter(|id| ComponentId::parse(id).is_ok())
            .map(|id| name(id))
            .collect();
        let valid = ids
            .iter()
            .filter(|id| ComponentId::parse(id).is_ok())
            .count();
        assert!(valid >= 8, "the cases are ids the config accepts");
        assert_eq!(names.len(), valid, "{names:?}");
    }

    #[test]
    fn a_batch_round_trips_and_any_damage_is_detected() {
        let batch = spans(3);
        let bytes = encode(&batch);
        assert_eq!(decode(&bytes).unwrap(), batch);
        assert_eq!(
            decode(&bytes[..bytes.len() - 1]),
            Err(CorruptBatch::Length {
                expected: bytes.len() - HEADER_LEN,
                actual: bytes.len() - HEADER_LEN - 1
            })
        );
        assert_eq!(decode(&bytes[..7]), Err(CorruptBatch::Truncated));
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&flipped), Err(CorruptBatch::Checksum));
        let mut signal = bytes.clone();
        signal[4] = 9;
        assert_eq!(decode(&signal), Err(CorruptBatch::UnknownSignal(9)));
        assert_eq!(decode(b"{\"not\": \"ours\"}"), Err(CorruptBatch::BadMagic));
    }

    #[tokio::test]
    async fn batches_left_by_a_previous_run_come_back_in_order_and_damaged_ones_are_skipped() {
        let root = root("reopen");
        let id = ComponentId::parse("awsxray/traces").unwrap();
        let (queue, recovered) = PersistentQueue::open(&root, &id, true).unwrap();
        assert!(recovered.is_empty());
        let first = queue.store(&spans(1)).await.unwrap();
        let exported = queue.store(&spans(2)).await.unwrap();
        let damaged = queue.store(&spans(3)).await.unwrap();
        queue.store(&spans(4)).await.unwrap();
        queue.remove(exported);
        let bytes = std::fs::read(&damaged.0).unwrap();
        std::fs::write(&damaged.0, &bytes[..bytes.len() / 2]).unwrap();
        std::fs::write(queue.directory.join("00000000000000000009.tmp"), b"OSQ").unwrap();
        drop((first, damaged));

        let (queue, recovered) = PersistentQueue::open(&root, &id, false).unwrap();
        assert!(!queue.directory.join("00000000000000000009.tmp").exists());
        let loaded: Vec<usize> = recovered
            .iter()
            .filter_map(|batch| queue.load(batch))
            .map(|payload| payload.item_count())
            .collect();
        assert_eq!(
            loaded,
            vec![1, 4],
            "oldest first; the half-written one skipped"
        );
        assert_eq!(
            std::fs::read_dir(&queue.directory).unwrap().count(),
            2,
            "the damaged file is gone"
        );
        let next = queue.store(&spans(5)).await.unwrap();
        assert!(
            next.0.ends_with("00000000000000000004.batch"),
            "numbering continues"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
