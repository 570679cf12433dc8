//! What a panic costs. Inside a contained region (one batch of one processor or exporter) it
//! costs that batch: counted as dropped with reason `internal_error`, logged with where it
//! happened (never the data, which the panic message may hold), and the component goes on.
//! Anywhere else it has ended a task the sidecar needs, so the health check turns unhealthy
//! from then on and ECS replaces the container (its health check fails), rather than a
//! half-working sidecar reporting OK.

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

thread_local! {
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

static UNCONTAINED_PANIC: AtomicBool = AtomicBool::new(false);

/// Replaces the default panic message (which prints the payload) with a log line of the
/// location, and records panics no region contains.
pub fn install_hook() {
    // Tests keep the default message too: it is how a failed assertion explains itself.
    #[cfg(test)]
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        #[cfg(test)]
        previous(info);
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        if CONTAINED.get() {
            tracing::error!(%location, thread, "internal error: the batch is dropped, the component goes on");
        } else {
            UNCONTAINED_PANIC.store(true, Ordering::SeqCst);
            tracing::error!(%location, thread, "internal error outside any batch: a task ended; health is now unhealthy so the container is replaced");
        }
    }));
}

/// False once a panic ended a task outside a contained region.
pub fn healthy() -> bool {
    !UNCONTAINED_PANIC.load(Ordering::SeqCst)
}

/// Resets the contained flag when the region ends, unwinding or not.
struct Region(bool);

impl Drop for Region {
    fn drop(&mut self) {
        CONTAINED.set(self.0);
    }
}

fn enter() -> Region {
    Region(CONTAINED.replace(true))
}

/// Runs `f` as a contained region without catching: for work moved to another thread whose
/// panic its caller observes (a blocking task's `JoinError`).
pub fn scope<T>(f: impl FnOnce() -> T) -> T {
    let _region = enter();
    f()
}

/// Runs one batch's work; `None` when it panicked (counted for `component`).
pub fn contain<T>(component: &str, f: impl FnOnce() -> T) -> Option<T> {
    let result = {
        let _region = enter();
        catch_unwind(AssertUnwindSafe(f))
    };
    result.map_err(|_| count(component)).ok()
}

fn count(component: &str) {
    metrics::counter!("otelsidecar_internal_errors", "component" => component.to_string())
        .increment(1);
}

/// A future whose panics are contained like [`contain`]'s: it resolves to `None` instead.
pub struct Contained<'a, T> {
    inner: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
    component: String,
}

impl<'a, T> Contained<'a, T> {
    pub fn new(component: &str, inner: impl Future<Output = T> + Send + 'a) -> Self {
        Contained {
            inner: Box::pin(inner),
            component: component.to_string(),
        }
    }
}

impl<T> Future for Contained<'_, T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let polled = {
            let _region = enter();
            catch_unwind(AssertUnwindSafe(|| self.inner.as_mut().poll(cx)))
        };
        match polled {
            Ok(Poll::Ready(value)) => Poll::Ready(Some(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => {
                count(&self.component);
                Poll::Ready(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contained_panic_costs_one_call() {
        install_hook();
        assert_eq!(contain("test", || 1), Some(1));
        assert_eq!(contain("test", || -> i32 { panic!("bad batch") }), None);
        assert_eq!(contain("test", || 2), Some(2), "the next call runs");
        assert!(healthy(), "contained panics leave health as it was");
        assert!(!CONTAINED.get(), "the region ended with the panic");
    }

    #[tokio::test]
    async fn a_contained_future_resolves_to_none() {
        install_hook();
        let ok = Contained::new("test", async { 3 }).await;
        let failed = Contained::new("test", async {
            tokio::task::yield_now().await;
            panic!("bad batch")
        })
        .await;
        let none: Option<()> = failed;
        assert_eq!((ok, none), (Some(3), None));
        assert!(healthy());
    }
}
