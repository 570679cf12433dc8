//! Helpers shared by unit tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

/// A future that counts how often it is polled: a task that is never polled was never woken.
pub struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Counted<F> {
    /// The future, and the count of its polls.
    pub fn new(inner: F) -> (Self, Arc<AtomicUsize>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = Counted {
            inner: Box::pin(inner),
            polls: polls.clone(),
        };
        (counted, polls)
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

/// How often the future counted by `polls` has been polled.
pub fn polls(polls: &AtomicUsize) -> usize {
    polls.load(Ordering::SeqCst)
}
