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
//! frames newer than the indexes' last commits are replayed.
//!
//! Reading back tells two kinds of damage apart ([`scan`]). A torn tail, the frame a
//! `kill -9` or a failed write interrupted, is incomplete: it was never acknowledged
//! and is skipped with a warning. Anything else that fails its checksum (a flipped
//! byte, a bad sector) may hold acknowledged records: reading resynchronises on the
//! next valid frame (frames within a segment carry consecutive sequence numbers,
//! which makes a false match practically impossible), so only the damaged frames are
//! lost. That is reported as an error with the sequence numbers it may have held,
//! counted in `/metrics` and shown in `/health`, and the segment is copied to
//! `damaged/` for inspection. Sequence numbers the damaged bytes could have held are
//! never handed out again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use crate::health::Throttle;
use crate::metrics::Metrics;
use crate::model::Signal;

/// Segments roll over at this size.
const SEGMENT_TARGET_BYTES: u64 = 64 << 20;
/// A group commit writes at most this much before its fsync.
const MAX_GROUP_BYTES: usize = 32 << 20;
const HEADER_LEN: usize = 4 + 4 + 8 + 1;
/// Largest frame payload accepted on replay; anything larger is corruption.
const MAX_FRAME_BYTES: usize = 1 << 30;
/// A failing write is logged at most this often.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Where copies of damaged segments are kept, under the log's directory.
pub const DAMAGED_DIR: &str = "damaged";

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
        // The next sequence number is above every one a frame may have had, the
        // damaged ones included.
        let mut last_lsn = committed.iter().copied().max().unwrap_or(0);
        let mut replayed = 0u64;
        for (first_lsn, path) in list_segments(dir)? {
            let bytes = fs::read(&path)?;
            let mut segment = SegmentInfo::new(path.clone(), first_lsn);
            let scanned = scan(&bytes, first_lsn);
            if let Some(tail) = scanned.torn_tail {
                warn!(
                    path = %path.display(),
                    offset = tail,
                    skipped_bytes = bytes.len() - tail,
                    "torn tail in write-ahead log segment (an interrupted write, never acknowledged), skipping it"
                );
            }
            if !scanned.damaged.is_empty() {
                report_damage(dir, &path, &scanned.damaged, &metrics);
            }
            last_lsn = last_lsn
                .max(first_lsn.saturating_sub(1))
                .max(scanned.max_possible_lsn);
            for record in scanned.frames {
                segment.note(record.signal, record.lsn);
                if record.lsn > committed[record.signal.ordinal()] {
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
            failing: Throttle::new(FAILURE_LOG_INTERVAL),
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

fn signal_byte(signal: Signal) -> u8 {
    signal.ordinal() as u8
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

/// A stretch of a segment that failed its checks and was followed by more bytes
/// (a valid frame, or a complete frame at the end): acknowledged records may have
/// been lost there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset and length in the segment.
    pub offset: usize,
    pub len: usize,
    /// The sequence numbers the damaged frames may have held (inclusive).
    pub lsns: (u64, u64),
}

/// What reading one segment found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every valid frame, in order.
    pub frames: Vec<WalRecord>,
    /// Damage between valid frames, or a complete final frame that fails its checksum.
    pub damaged: Vec<Damage>,
    /// Where an incomplete last frame starts (a write that was interrupted).
    pub torn_tail: Option<usize>,
    /// The highest sequence number a frame of the segment may have had, damaged
    /// ones included.
    pub max_possible_lsn: u64,
}

/// The header of a frame at `offset` that passes its checks, with its payload's
/// length: complete, a known signal, a sequence number in `lsns`, and a matching
/// checksum.
fn frame_at(bytes: &[u8], offset: usize, lsns: (u64, u64)) -> Option<(u64, Signal, usize)> {
    let header = bytes.get(offset..offset.checked_add(HEADER_LEN)?)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let mut lsn_bytes = [0u8; 8];
    lsn_bytes.copy_from_slice(&header[8..16]);
    let lsn = u64::from_le_bytes(lsn_bytes);
    let signal = signal_from_byte(header[16])?;
    if len > MAX_FRAME_BYTES || !(lsns.0..=lsns.1).contains(&lsn) {
        return None;
    }
    let payload = bytes.get(offset + HEADER_LEN..offset + HEADER_LEN + len)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..17]);
    hasher.update(payload);
    (hasher.finalize() == crc).then_some((lsn, signal, len))
}

/// Reads the frames of a segment whose first frame is `first_lsn`. A frame that
/// fails its checks is skipped alone: reading resumes at the next offset that holds
/// a valid frame with a plausible sequence number (frames of a segment are numbered
/// consecutively, and each takes at least a header's bytes). Nothing valid after it
/// means the tail: incomplete, it is torn; complete but failing its checksum, it is
/// damaged.
pub fn scan(bytes: &[u8], first_lsn: u64) -> Scan {
    let mut scan = Scan {
        max_possible_lsn: first_lsn.saturating_sub(1),
        ..Scan::default()
    };
    // The sequence number the next frame should have.
    let mut expected = first_lsn;
    let mut offset = 0;
    while offset < bytes.len() {
        if let Some((lsn, signal, len)) = frame_at(bytes, offset, (expected, expected)) {
            let payload = &bytes[offset + HEADER_LEN..offset + HEADER_LEN + len];
            scan.frames.push(WalRecord {
                lsn,
                signal,
                payload: payload.to_vec(),
            });
            scan.max_possible_lsn = scan.max_possible_lsn.max(lsn);
            expected = lsn + 1;
            offset += HEADER_LEN + len;
            continue;
        }
        // Damaged from here: find the next frame that the lost ones could precede.
        let next = (offset + 1..bytes.len()).find_map(|candidate| {
            let most_lost = ((candidate - offset) / HEADER_LEN) as u64;
            frame_at(bytes, candidate, (expected, expected + most_lost))
                .map(|(lsn, _, _)| (candidate, lsn))
        });
        match next {
            Some((resume, lsn)) => {
                scan.damaged.push(Damage {
                    offset,
                    len: resume - offset,
                    lsns: (expected, lsn.saturating_sub(1)),
                });
                expected = lsn;
                offset = resume;
            }
            None => {
                let rest = bytes.len() - offset;
                if tail_is_complete(&bytes[offset..]) {
                    let most_lost = (rest / HEADER_LEN).max(1) as u64;
                    scan.max_possible_lsn = scan.max_possible_lsn.max(expected + most_lost - 1);
                    scan.damaged.push(Damage {
                        offset,
                        len: rest,
                        lsns: (expected, expected + most_lost - 1),
                    });
                } else {
                    scan.torn_tail = Some(offset);
                }
                break;
            }
        }
    }
    scan
}

/// Whether the bytes after the last valid frame hold a whole frame: by its length
/// field, or, should that be what is damaged, by a checksum that matches the bytes
/// that are there. A torn write leaves less than its length and fails its checksum.
fn tail_is_complete(rest: &[u8]) -> bool {
    if rest.len() < HEADER_LEN {
        return false;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    if HEADER_LEN.saturating_add(len) <= rest.len() {
        return true;
    }
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&rest[8..]);
    hasher.finalize() == crc
}

/// Says loudly what was lost, counts it, and keeps a copy of the segment.
fn report_damage(dir: &Path, path: &Path, damaged: &[Damage], metrics: &Metrics) {
    let aside = dir
        .join(DAMAGED_DIR)
        .join(path.file_name().unwrap_or_default());
    let kept = fs::create_dir_all(dir.join(DAMAGED_DIR))
        .and_then(|()| fs::copy(path, &aside))
        .map(|_| aside.display().to_string());
    for damage in damaged {
        error!(
            path = %path.display(),
            offset = damage.offset,
            bytes = damage.len,
            lost_lsns = %format!("{}..={}", damage.lsns.0, damage.lsns.1),
            copy = %kept.as_deref().unwrap_or("(could not copy)"),
            "write-ahead log segment is damaged: the frames in this stretch fail their checksum and are lost; the frames after it are replayed"
        );
        metrics.wal_damaged_regions.fetch_add(1, Ordering::Relaxed);
        metrics
            .wal_damaged_bytes
            .fetch_add(damage.len as u64, Ordering::Relaxed);
    }
    if let Err(e) = &kept {
        warn!(path = %path.display(), error = %e, "cannot keep a copy of the damaged write-ahead log segment");
    }
    metrics.health.note(format!(
        "write-ahead log segment {} was damaged ({} stretch(es)); a copy is in {}",
        path.display(),
        damaged.len(),
        dir.join(DAMAGED_DIR).display()
    ));
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
        let slot = &mut self.max_lsn[signal.ordinal()];
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
    /// Paces the log lines of a failure that repeats (a full disk).
    failing: Throttle,
}

struct Pending {
    lsn: u64,
    signal: Signal,
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
                        pending.push(Pending {
                            lsn,
                            signal,
                            on_durable,
                            reply,
                        });
                    }
                    Command::Checkpoint { signal, lsn } => {
                        let slot = &mut self.committed[signal.ordinal()];
                        *slot = (*slot).max(lsn);
                    }
                }
                if buffer.len() < MAX_GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            if !pending.is_empty() {
                let result = self.write_and_sync(&buffer, &pending);
                buffer.clear();
                for Pending {
                    lsn,
                    on_durable,
                    reply,
                    ..
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

    fn write_and_sync(&mut self, bytes: &[u8], frames: &[Pending]) -> io::Result<()> {
        let result = self.try_write_and_sync(bytes, frames);
        match &result {
            Ok(()) => {
                if self.failing.admit_recovery() {
                    info!("the write-ahead log is writable again");
                    self.metrics.health.set("wal", None);
                }
            }
            Err(e) => {
                self.metrics
                    .wal_write_errors
                    .fetch_add(1, Ordering::Relaxed);
                let condition = format!(
                    "cannot write the write-ahead log ({e}): exports are refused with 503 / Unavailable until it can"
                );
                if let Some(suppressed) = self.failing.admit() {
                    error!(error = %e, dir = %self.dir.display(), failed_since_last_report = suppressed, "cannot write the write-ahead log; refusing exports until it can");
                }
                self.metrics.health.set("wal", Some(condition));
                // What the failed group wrote is cut off again (its requests were
                // refused: it must not come back on replay), and later frames go to
                // a new segment so that nothing hides behind a torn one.
                if let Some((segment, writer)) = self.current.take() {
                    let (file, _unwritten) = writer.into_parts();
                    if let Err(e) = file.set_len(segment.bytes) {
                        debug!(error = %e, "cannot cut a failed write off the write-ahead log");
                    }
                    self.closed.push(segment);
                }
                if let Err(e) = self.roll() {
                    debug!(error = %e, "cannot start a new write-ahead log segment");
                }
            }
        }
        result
    }

    fn try_write_and_sync(&mut self, bytes: &[u8], frames: &[Pending]) -> io::Result<()> {
        if self.current.is_none() {
            // Named by the first frame it will hold: reading a segment back
            // expects its frames numbered from its name on.
            let first = frames.first().map_or(self.next_lsn, |frame| frame.lsn);
            self.roll_at(first)?;
        }
        let Some((segment, writer)) = &mut self.current else {
            return Err(io::Error::other("no open write-ahead log segment"));
        };
        // Noted before writing: a segment holding part of a frame is not deleted
        // before the frame's sequence number is committed.
        for frame in frames {
            segment.note(frame.signal, frame.lsn);
        }
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
            // The frames are durable either way; without a new segment the next
            // write tries again.
            if let Err(e) = self.roll() {
                warn!(error = %e, "cannot start a new write-ahead log segment");
            }
        }
        Ok(())
    }

    /// Closes the current segment and opens a new one starting at the next sequence number.
    fn roll(&mut self) -> io::Result<()> {
        self.roll_at(self.next_lsn)
    }

    /// Closes the current segment and opens a new one whose first frame is `first_lsn`.
    fn roll_at(&mut self, first_lsn: u64) -> io::Result<()> {
        if let Some((segment, mut writer)) = self.current.take() {
            let _ = writer.flush();
            self.closed.push(segment);
        }
        let path = self.dir.join(format!("{first_lsn:020}.wal"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        // Make the new file's directory entry durable too.
        File::open(&self.dir)?.sync_all()?;
        self.current = Some((
            SegmentInfo::new(path, first_lsn),
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
        let scanned = scan(&bytes, 1);
        assert_eq!(scanned.frames.len(), 1);
        assert_eq!(scanned.torn_tail, Some(good_len));
        assert!(scanned.damaged.is_empty(), "a torn tail is not damage");

        // A flipped bit fails the checksum; a whole frame that fails it is damage,
        // not a torn tail: it may have been acknowledged.
        let mut corrupt = Vec::new();
        encode_frame(&mut corrupt, 1, Signal::Logs, b"payload");
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let scanned = scan(&corrupt, 1);
        assert_eq!(scanned.frames.len(), 0);
        assert_eq!(scanned.torn_tail, None);
        assert_eq!(scanned.damaged.len(), 1);
        assert_eq!(scanned.damaged[0].lsns.0, 1);
    }

    /// 400 frames of growing size, numbered from `first`.
    fn segment_of(first: u64, count: u64) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for lsn in first..first + count {
            offsets.push(bytes.len());
            let payload = format!("batch {lsn} {}", "x".repeat((lsn % 97) as usize));
            encode_frame(&mut bytes, lsn, Signal::Spans, payload.as_bytes());
        }
        (bytes, offsets)
    }

    #[test]
    fn a_damaged_frame_in_the_middle_is_skipped_alone() {
        let (clean, offsets) = segment_of(10, 400);
        for (target, what) in [
            (0, "the first frame"),
            (200, "a middle frame"),
            (399, "the last frame"),
        ] {
            // A flipped byte in the payload, and one in the length field.
            for delta in [HEADER_LEN + 3, 1] {
                let mut bytes = clean.clone();
                bytes[offsets[target] + delta] ^= 0x40;
                let scanned = scan(&bytes, 10);
                let lsns: Vec<u64> = scanned.frames.iter().map(|f| f.lsn).collect();
                let expected: Vec<u64> =
                    (10..410).filter(|&lsn| lsn != 10 + target as u64).collect();
                assert_eq!(lsns, expected, "{what}, byte {delta}");
                assert_eq!(scanned.damaged.len(), 1, "{what}, byte {delta}");
                let damage = &scanned.damaged[0];
                assert_eq!(damage.offset, offsets[target], "{what}");
                assert_eq!(damage.lsns.0, 10 + target as u64, "{what}");
                assert!(damage.lsns.1 >= damage.lsns.0, "{what}");
                assert_eq!(scanned.torn_tail, None, "{what}");
                assert!(scanned.max_possible_lsn >= 409, "{what}");
            }
        }
        // Several frames wiped out at once: the ones after are still found, and the
        // lost numbers are the ones between.
        let mut bytes = clean.clone();
        for byte in &mut bytes[offsets[100]..offsets[103]] {
            *byte = 0;
        }
        let scanned = scan(&bytes, 10);
        assert_eq!(scanned.frames.len(), 397);
        assert_eq!(scanned.damaged[0].lsns, (110, 112));
    }

    #[test]
    fn garbage_is_scanned_in_linear_time_and_yields_nothing() {
        // Every offset looks like a header claiming a long frame: the sequence
        // number check rejects each before any checksum is computed.
        let mut bytes = Vec::new();
        while bytes.len() < 4 << 20 {
            bytes.extend_from_slice(&[
                0xff, 0xff, 0x0f, 0x00, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]);
        }
        let scanned = scan(&bytes, 1);
        assert!(scanned.frames.is_empty());
        assert_eq!(
            scanned.damaged.len() + usize::from(scanned.torn_tail.is_some()),
            1
        );
    }

    #[tokio::test]
    async fn reopening_a_damaged_log_replays_the_rest_reports_and_keeps_a_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::default());
        let (mut bytes, offsets) = segment_of(1, 400);
        bytes[offsets[0] + HEADER_LEN + 1] ^= 0x01;
        let path = dir.path().join(format!("{:020}.wal", 1));
        fs::write(&path, &bytes).expect("write");
        let mut replayed = Vec::new();
        let (wal, thread) = Wal::open(dir.path(), [0, 0], metrics.clone(), |r| {
            replayed.push(r.lsn)
        })
        .expect("open");
        assert_eq!(
            replayed,
            (2..=400).collect::<Vec<u64>>(),
            "all but the damaged frame"
        );
        assert_eq!(metrics.wal_damaged_regions.load(Ordering::Relaxed), 1);
        assert!(metrics.wal_damaged_bytes.load(Ordering::Relaxed) > 0);
        assert!(metrics
            .render()
            .contains("hopline_wal_damaged_regions_total 1"));
        let problems = metrics.health.problems();
        assert!(
            problems.iter().any(|p| p.contains("damaged")),
            "{problems:?}"
        );
        let copy = dir
            .path()
            .join(DAMAGED_DIR)
            .join(path.file_name().expect("name"));
        assert_eq!(fs::read(&copy).expect("a copy is kept"), bytes);
        // No sequence number is handed out twice.
        let lsn = wal
            .append(Signal::Logs, b"new".to_vec(), noop())
            .await
            .expect("append");
        assert!(lsn > 400, "{lsn}");
        drop(wal);
        thread.join();
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
