//! Answers that leave something out say so. The distributed query service
//! answers what it can when a node does not (an ingest node down: its records not
//! yet published are missing); it notes that here, and the API puts the notes on
//! the answer (`warnings`, and the `Hopline-Partial` header). The notes live in the
//! request's task, so concurrent requests never see each other's.

use std::future::Future;
use std::sync::{Arc, Mutex};

/// Notes kept per answer at most.
const MAX_NOTES: usize = 16;

tokio::task_local! {
    static LEFT_OUT: Arc<Mutex<Vec<String>>>;
}

/// Runs `work`, and gathers what the query service left out of its answers
/// meanwhile.
pub async fn gathering<F: Future>(work: F) -> (F::Output, Vec<String>) {
    let notes = Arc::new(Mutex::new(Vec::new()));
    let output = LEFT_OUT.scope(Arc::clone(&notes), work).await;
    let notes = std::mem::take(&mut *notes.lock().unwrap_or_else(|e| e.into_inner()));
    (output, notes)
}

/// Says what an answer in the making leaves out (each note once); outside
/// [`gathering`], nobody is told.
pub fn left_out(note: String) {
    let _ = LEFT_OUT.try_with(|notes| {
        let mut notes = notes.lock().unwrap_or_else(|e| e.into_inner());
        if notes.len() < MAX_NOTES && !notes.contains(&note) {
            notes.push(note);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notes_stay_with_their_request() {
        let (_, none) = gathering(async {}).await;
        assert!(none.is_empty());
        let ((), notes) = gathering(async {
            left_out("node a did not answer".into());
            left_out("node a did not answer".into());
            // Futures joined in the same task note into the same answer.
            futures_util::future::join(
                async { left_out("node b did not answer".into()) },
                tokio::task::yield_now(),
            )
            .await;
        })
        .await;
        assert_eq!(notes, ["node a did not answer", "node b did not answer"]);
        // Outside a request: nothing to tell, nothing kept.
        left_out("lost".into());
        let (_, after) = gathering(async {}).await;
        assert!(after.is_empty());
    }
}
