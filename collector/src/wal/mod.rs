//! The write-ahead log: what makes an acknowledgement true.
//!
//! Every accepted batch is appended here, as one frame, and fsync'd before the client
//! hears "ok". One thread owns the log and commits in groups: it takes every append
//! waiting in its queue, writes them all, calls `fdatasync` once, and only then hands
//! each batch on (in log order) to the index writer and answers its request.
//!
//! Frames: `len: u32 LE | crc32: u32 LE | lsn: u64 LE | signal: u8 | payload`, the crc
//! covering everything after itself. The log is cut into segment files named by
//! their first sequence number (`00000000000000000001.wal`). A segment is deleted once
//! both indexes have committed everything in it (they report checkpoints). On start,
//! frames newer than the indexes' last commits are replayed; a torn or corrupt tail
//! (the frame a `kill -9` interrupted) is detected by its length or checksum and
//! skipped with a warning.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::metrics::{Metrics, Signal};

/// Segments roll over at this size.
const SEGMENT_TARGET_BYTES: u64 = 64 << 20;
/// A group commit writes at most this much before its fsync.
const MAX_GROUP_BYTES: usize = 32 << 20;
const HEADER_LEN: usize = 4 + 4 + 8 + 1;
/// Largest frame payload accepted on replay; anything larger is corruption.
const MAX_FRAME_BYTES: usize = 1 << 30;

/// One frame read back from the log.
#[derive(Debug)]
pub struct WalRecord {
    pub lsn: u64,
    pub signal: Signal,
    pub payload: Vec<u8>,
}

/// Called by the log thread once a frame is durable, in log order, with its
/// sequence number. Returns false when the batch could not be handed on.
pub type OnDurable = Box<dyn FnOnce(u64) -> bool + Send>;

enum Command {
    Append {
        signal: Signal,
        payload: Vec<u8>,
        on_durable: OnDurable,
        reply: oneshot::Sender<io::Result<u64>>,
    },
    Checkpoint {
        signal: Signal,
        lsn: u64,
    },
}

/// Handle to the log thread. Dropping every clone of it (and so the sender) lets the
/// thread finish its queue and stop; [`WalThread::join`] waits for that.
#[derive(Clone)]
pub struct Wal {
    tx: mpsc::Sender<Command>,
}

/// The thread behind a [`Wal`]; join it after dropping every `Wal` handle.
pub struct WalThread(JoinHandle<()>);

impl WalThread {
    pub fn join(self) {
        if self.0.join().is_err() {
            warn!("write-ahead log thread panicked");
        }
    }
}

impl Wal {
    /// Opens the log in `dir`, passes every frame newer than `committed(signal)` to
    /// `replay`, in order, and starts the log thread on a fresh segment.
    pub fn open(
        dir: &Path,
        committed: [u64; 2],
        metrics: Arc<Metrics>,
        mut replay: impl FnMut(WalRecord),
    ) -> io::Result<(Wal, WalThread)> {
        fs::create_dir_all(dir)?;
        let mut segments = Vec::new();
        let mut last_lsn = committed.iter().copied().max().unwrap_or(0);
        let mut replayed = 0u64;
        for (first_lsn, path) in list_segments(dir)? {
            let bytes = fs::read(&path)?;
            let mut segment = SegmentInfo::new(path.clone(), first_lsn);
            let (frames, valid_len) = parse_frames(&bytes);
            if valid_len < bytes.len() {
                warn!(
                    path = %path.display(),
                    offset = valid_len,
                    skipped_bytes = bytes.len() - valid_len,
                    "torn or corrupt tail in write-ahead log segment, skipping it"
                );
            }
            for record in frames {
                segment.note(record.signal, record.lsn);
                last_lsn = last_lsn.max(record.lsn);
                if record.lsn > committed[signal_index(record.signal)] {
                    replayed += 1;
                    replay(record);
                }
            }
            segment.bytes = bytes.len() as u64;
            segments.push(segment);
        }
        if replayed > 0 {
            info!(frames = replayed, "replayed write-ahead log");
        }
        let mut state = LogState {
            dir: dir.to_path_buf(),
            closed: segments,
            current: None,
            next_lsn: last_lsn + 1,
            committed,
            metrics,
        };
        state.delete_committed_segments();
        state.roll()?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("hopline-wal".into())
            .spawn(move || state.run(rx))?;
        Ok((Wal { tx }, WalThread(handle)))
    }

    /// Appends one frame and waits until it is on disk. `on_durable` runs on the log
    /// thread after the fsync, before this returns.
    pub async fn append(
        &self,
        signal: Signal,
        payload: Vec<u8>,
        on_durable: OnDurable,
    ) -> io::Result<u64> {
        let (reply, response) = oneshot::channel();
        self.tx
            .send(Command::Append {
                signal,
                payload,
                on_durable,
                reply,
            })
            .map_err(|_| io::Error::other("write-ahead log is shut down"))?;
        response
            .await
            .map_err(|_| io::Error::other("write-ahead log stopped before the write was durable"))?
    }

    /// Records that `signal`'s index has committed every frame up to `lsn`.
    pub fn checkpoint(&self, signal: Signal, lsn: u64) {
        let _ = self.tx.send(Command::Checkpoint { signal, lsn });
    }
}

fn signal_index(signal: Signal) -> usize {
    match signal {
        Signal::Spans => 0,
        Signal::Logs => 1,
    }
}

fn signal_byte(signal: Signal) -> u8 {
    signal_index(signal) as u8
}

fn signal_from_byte(byte: u8) -> Option<Signal> {
    match byte {
        0 => Some(Signal::Spans),
        1 => Some(Signal::Logs),
        _ => None,
    }
}

fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(first_lsn) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".wal"))
            .and_then(|stem| stem.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((first_lsn, path));
    }
    segments.sort();
    Ok(segments)
}

fn encode_frame(out: &mut Vec<u8>, lsn: u64, signal: Signal, payload: &[u8]) {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(&[signal_byte(signal)]);
    hasher.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.push(signal_byte(signal));
    out.extend_from_slice(payload);
}

/// Reads frames until the end or the first frame that is incomplete or fails its
/// checksum. Returns the frames and how many bytes were valid.
fn parse_frames(bytes: &[u8]) -> (Vec<WalRecord>, usize) {
    let mut frames = Vec::new();
    let mut offset = 0;
    while bytes.len() - offset >= HEADER_LEN {
        let header = &bytes[offset..offset + HEADER_LEN];
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut lsn_bytes = [0u8; 8];
        lsn_bytes.copy_from_slice(&header[8..16]);
        let lsn = u64::from_le_bytes(lsn_bytes);
        let Some(signal) = signal_from_byte(header[16]) else {
            break;
        };
        if len > MAX_FRAME_BYTES || bytes.len() - offset - HEADER_LEN < len {
            break;
        }
        let payload = &bytes[offset + HEADER_LEN..offset + HEADER_LEN + len];
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[8..17]);
        hasher.update(payload);
        if hasher.finalize() != crc {
            break;
        }
        frames.push(WalRecord {
            lsn,
            signal,
            payload: payload.to_vec(),
        });
        offset += HEADER_LEN + len;
    }
    (frames, offset)
}

struct SegmentInfo {
    path: PathBuf,
    first_lsn: u64,
    /// Highest sequence number of each signal in the segment.
    max_lsn: [Option<u64>; 2],
    bytes: u64,
}

impl SegmentInfo {
    fn new(path: PathBuf, first_lsn: u64) -> Self {
        Self {
            path,
            first_lsn,
            max_lsn: [None, None],
            bytes: 0,
        }
    }

    fn note(&mut self, signal: Signal, lsn: u64) {
        let slot = &mut self.max_lsn[signal_index(signal)];
        *slot = Some(slot.map_or(lsn, |max| max.max(lsn)));
    }

    fn is_committed(&self, committed: &[u64; 2]) -> bool {
        self.max_lsn
            .iter()
            .zip(committed)
            .all(|(max, committed)| max.is_none_or(|max| max <= *committed))
    }
}

struct LogState {
    dir: PathBuf,
    closed: Vec<SegmentInfo>,
    current: Option<(SegmentInfo, BufWriter<File>)>,
    next_lsn: u64,
    committed: [u64; 2],
    metrics: Arc<Metrics>,
}

struct Pending {
    lsn: u64,
    on_durable: OnDurable,
    reply: oneshot::Sender<io::Result<u64>>,
}

impl LogState {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut buffer = Vec::new();
        let mut pending = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append {
                        signal,
                        payload,
                        on_durable,
                        reply,
                    } => {
                        let lsn = self.next_lsn;
                        self.next_lsn += 1;
                        encode_frame(&mut buffer, lsn, signal, &payload);
                        if let Some((segment, _)) = &mut self.current {
                            segment.note(signal, lsn);
                        }
                        pending.push(Pending {
                            lsn,
                            on_durable,
                            reply,
                        });
                    }
                    Command::Checkpoint { signal, lsn } => {
                        let slot = &mut self.committed[signal_index(signal)];
                        *slot = (*slot).max(lsn);
                    }
                }
                if buffer.len() < MAX_GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            if !pending.is_empty() {
                let result = self.write_and_sync(&buffer);
                buffer.clear();
                for Pending {
                    lsn,
                    on_durable,
                    reply,
                } in pending.drain(..)
                {
                    let outcome = match &result {
                        Ok(()) if on_durable(lsn) => Ok(lsn),
                        Ok(()) => Err(io::Error::other("the index writer has stopped")),
                        Err(e) => Err(io::Error::new(e.kind(), format!("write-ahead log: {e}"))),
                    };
                    let _ = reply.send(outcome);
                }
            }
            self.delete_committed_segments();
        }
        if let Some((_, mut writer)) = self.current.take() {
            let _ = writer.flush().and_then(|()| writer.get_ref().sync_data());
        }
        debug!("write-ahead log thread stopped");
    }

    fn write_and_sync(&mut self, bytes: &[u8]) -> io::Result<()> {
        let result = self.try_write_and_sync(bytes);
        if result.is_err() {
            // A failed write may have left half a frame behind: continue in a new
            // segment so that later frames are not hidden behind a torn one.
            if let Err(e) = self.roll() {
                warn!(error = %e, "cannot start a new write-ahead log segment");
            }
        }
        result
    }

    fn try_write_and_sync(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.current.is_none() {
            self.roll()?;
        }
        let Some((segment, writer)) = &mut self.current else {
            return Err(io::Error::other("no open write-ahead log segment"));
        };
        writer.write_all(bytes)?;
        writer.flush()?;
        let started = Instant::now();
        writer.get_ref().sync_data()?;
        self.metrics.wal_fsync_seconds.observe(started.elapsed());
        self.metrics.wal_fsyncs.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .wal_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        segment.bytes += bytes.len() as u64;
        if segment.bytes >= SEGMENT_TARGET_BYTES {
            self.roll()?;
        }
        Ok(())
    }

    /// Closes the current segment and opens a new one starting at the next sequence number.
    fn roll(&mut self) -> io::Result<()> {
        if let Some((segment, mut writer)) = self.current.take() {
            let _ = writer.flush();
            self.closed.push(segment);
        }
        let path = self.dir.join(format!("{:020}.wal", self.next_lsn));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        // Make the new file's directory entry durable too.
        File::open(&self.dir)?.sync_all()?;
        self.current = Some((
            SegmentInfo::new(path, self.next_lsn),
            BufWriter::with_capacity(1 << 20, file),
        ));
        Ok(())
    }

    fn delete_committed_segments(&mut self) {
        let committed = self.committed;
        self.closed.retain(|segment| {
            if !segment.is_committed(&committed) {
                return true;
            }
            match fs::remove_file(&segment.path) {
                Ok(()) => {
                    debug!(first_lsn = segment.first_lsn, "deleted committed write-ahead log segment");
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => {
                    warn!(path = %segment.path.display(), error = %e, "cannot delete write-ahead log segment");
                    true
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn noop() -> OnDurable {
        Box::new(|_| true)
    }

    #[tokio::test]
    async fn appended_frames_are_replayed_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::default());
        let (wal, thread) =
            Wal::open(dir.path(), [0, 0], metrics.clone(), |_| panic!("empty log")).expect("open");
        let first = wal
            .append(Signal::Spans, b"a".to_vec(), noop())
            .await
            .expect("append");
        let second = wal
            .append(Signal::Logs, b"bb".to_vec(), noop())
            .await
            .expect("append");
        assert!(second > first);
        assert!(metrics.wal_fsyncs.load(Ordering::Relaxed) >= 1);
        drop(wal);
        thread.join();

        let mut replayed = Vec::new();
        let (_wal, _thread) = Wal::open(dir.path(), [0, 0], metrics, |record| {
            replayed.push((record.lsn, record.signal, record.payload))
        })
        .expect("reopen");
        assert_eq!(
            replayed,
            vec![
                (first, Signal::Spans, b"a".to_vec()),
                (second, Signal::Logs, b"bb".to_vec())
            ]
        );
    }

    #[tokio::test]
    async fn committed_frames_are_not_replayed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::default());
        let (wal, thread) = Wal::open(dir.path(), [0, 0], metrics.clone(), |_| {}).expect("open");
        let spans = wal
            .append(Signal::Spans, b"s".to_vec(), noop())
            .await
            .expect("append");
        let logs = wal
            .append(Signal::Logs, b"l".to_vec(), noop())
            .await
            .expect("append");
        drop(wal);
        thread.join();
        let mut replayed = Vec::new();
        let _ = Wal::open(dir.path(), [spans, 0], metrics, |record| {
            replayed.push(record.lsn)
        })
        .expect("reopen");
        assert_eq!(replayed, vec![logs]);
    }

    #[test]
    fn a_torn_tail_is_skipped_and_the_frames_before_it_kept() {
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, 1, Signal::Spans, b"complete");
        let good_len = bytes.len();
        encode_frame(&mut bytes, 2, Signal::Spans, b"interrupted by kill -9");
        bytes.truncate(bytes.len() - 5);
        let (frames, valid) = parse_frames(&bytes);
        assert_eq!(frames.len(), 1);
        assert_eq!(valid, good_len);

        // A flipped bit fails the checksum.
        let mut corrupt = Vec::new();
        encode_frame(&mut corrupt, 1, Signal::Logs, b"payload");
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert_eq!(parse_frames(&corrupt).0.len(), 0);
    }

    #[tokio::test]
    async fn reopening_after_a_torn_tail_keeps_appending_safely() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::default());
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, 1, Signal::Spans, b"kept");
        bytes.extend_from_slice(&[7, 0, 0]);
        fs::write(dir.path().join(format!("{:020}.wal", 1)), &bytes).expect("write");
        let replayed = Mutex::new(Vec::new());
        let (wal, thread) = Wal::open(dir.path(), [0, 0], metrics.clone(), |r| {
            replayed.lock().expect("lock").push(r.lsn)
        })
        .expect("open");
        assert_eq!(*replayed.lock().expect("lock"), vec![1]);
        let lsn = wal
            .append(Signal::Spans, b"new".to_vec(), noop())
            .await
            .expect("append");
        assert_eq!(lsn, 2);
        drop(wal);
        thread.join();
        let mut again = Vec::new();
        let _ = Wal::open(dir.path(), [0, 0], metrics, |r| again.push(r.lsn)).expect("reopen");
        assert_eq!(again, vec![1, 2]);
    }

    #[tokio::test]
    async fn segments_are_deleted_once_both_indexes_committed_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::default());
        let (wal, thread) = Wal::open(dir.path(), [0, 0], metrics.clone(), |_| {}).expect("open");
        let lsn = wal
            .append(Signal::Spans, vec![0; 16], noop())
            .await
            .expect("append");
        drop(wal);
        thread.join();
        // The next open replays the frame, then, told it is committed, drops its segment.
        let (wal, thread) = Wal::open(dir.path(), [lsn, 0], metrics, |_| {}).expect("reopen");
        drop(wal);
        thread.join();
        let remaining: Vec<_> = list_segments(dir.path())
            .expect("list")
            .into_iter()
            .map(|(lsn, _)| lsn)
            .collect();
        assert_eq!(remaining, vec![lsn + 1], "only the fresh segment is left");
    }
}
