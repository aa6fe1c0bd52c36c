//! Futures run together: a listing's reads of a subject's sessions, or a revocation's ends of
//! them, go out at once rather than one after another. Single-threaded, as Workers are.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Runs futures concurrently and gives their outputs in order (a session's reads of its subject's
/// other sessions go out together rather than one after another).
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls a future that never waits on anything outside itself.
    fn ready<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("a future here never waits"),
        }
    }

    #[test]
    fn join_all_keeps_order() {
        let outputs = ready(join_all((0..5).map(|n| async move { n * 2 })));
        assert_eq!(outputs, vec![0, 2, 4, 6, 8]);
    }
}
