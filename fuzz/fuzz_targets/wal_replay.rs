//! Replaying a write-ahead log segment of any content: frames are found or skipped
//! (never read past the end, never a panic), and each frame's payload decodes into
//! records or an error.
#![no_main]

use bytes::Bytes;
use hopline::config::RecordLimits;
use hopline::ingest::WalPayload;
use hopline::wal::scan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, segment)) = data.split_first() else {
        return;
    };
    let scanned = scan(segment, u64::from(first));
    let mut last = None;
    for frame in scanned.frames {
        // Frames come back in order, numbered from the segment's first on.
        assert!(frame.lsn >= u64::from(first));
        assert!(last.is_none_or(|last| frame.lsn > last));
        last = Some(frame.lsn);
        let _ = WalPayload::decode(frame.signal, Bytes::from(frame.payload), &RecordLimits::default());
    }
    for damage in &scanned.damaged {
        assert!(damage.offset + damage.len <= segment.len());
    }
});
