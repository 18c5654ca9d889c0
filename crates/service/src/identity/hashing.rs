//! The password-hashing pool: a few threads of their own, at the lowest scheduling priority an
//! unprivileged process can give itself, that run Argon2 and bcrypt and nothing else.
//!
//! Hashing is slow on purpose (tens of milliseconds of CPU per check), so a flood of sign-ins
//! would otherwise take cores from every other request. Two things keep it out of their way:
//! - **Turns**: a semaphore with one permit per core less one (at least one). A sign-in holds a
//!   turn from its limit check to its failure record (see `sessions`), so concurrent guesses queue
//!   here, and there are exactly as many threads as turns.
//! - **Priority**: on Linux each thread runs under `SCHED_IDLE`, below even nice 19: the kernel
//!   gives it a core only when no normal thread wants one, and a waking request handler preempts
//!   it at once. Where `SCHED_IDLE` is refused the thread falls back to nice 19. A hash therefore
//!   takes longer on a busy machine; other requests do not.
//!
//! Not `spawn_blocking`: tokio's blocking pool also runs file I/O, and its threads are shared, so
//! lowering their priority would slow uploads and downloads too.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::{Result, ServiceError};

/// The name of every hashing thread (at most 15 bytes: Linux cuts thread names there). Tests and
/// operators find the threads by it in `/proc/<pid>/task/*/comm`.
pub const THREAD_NAME: &str = "password-hash";

/// A unit of work for a hashing thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// How low a hashing thread's priority got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Linux `SCHED_IDLE`: runs only on otherwise idle CPU time.
    Idle,
    /// Nice 19 under the normal policy.
    Nice19,
    /// Neither could be set; the thread runs at the process's priority.
    Unchanged,
}

/// The turns and the threads that hash passwords.
pub(crate) struct HashPool {
    turns: tokio::sync::Semaphore,
    jobs: mpsc::Sender<Job>,
}

impl HashPool {
    /// Starts `threads` hashing threads (at least one) with as many turns.
    pub(crate) fn start(threads: usize) -> Result<HashPool> {
        let threads = threads.max(1);
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..threads {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(THREAD_NAME.into())
                .spawn(move || work(&rx))
                .map_err(|e| ServiceError::Internal(format!("starting a hashing thread: {e}")))?;
        }
        Ok(HashPool {
            turns: tokio::sync::Semaphore::new(threads),
            jobs,
        })
    }

    /// Waits for a hashing turn. While a caller holds one, its [`HashPool::run`] starts at once.
    pub(crate) async fn turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.turns
            .acquire()
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Runs `f` on a hashing thread and returns its result. The caller should hold a turn: the
    /// threads are as many as the turns, so work beyond them waits in line. When the caller
    /// stops waiting (the client went away) before a thread picks `f` up, `f` is skipped.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if !tx.is_closed() {
                let _ = tx.send(f());
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| ServiceError::Internal("the password-hashing threads are gone".into()))?;
        rx.await
            .map_err(|_| ServiceError::Internal("a password-hashing job failed".into()))
    }
}

/// A hashing thread: lowers its own priority, then runs jobs until the pool is dropped.
fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    let priority = lower_current_thread();
    if priority != Priority::Idle {
        tracing::warn!(
            ?priority,
            "password hashing could not get SCHED_IDLE: sign-in floods compete with other requests"
        );
    }
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        // A panicking hash drops the job's sender (its caller gets an error); the thread stays.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

/// Puts the calling thread at the lowest priority available: `SCHED_IDLE` on Linux, else nice 19.
pub fn lower_current_thread() -> Priority {
    if set_sched_idle() {
        Priority::Idle
    } else if set_nice_19() {
        Priority::Nice19
    } else {
        Priority::Unchanged
    }
}

/// Moves the calling thread to `SCHED_IDLE`; whether it is there now.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_sched_idle() -> bool {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id, thread_schedule_policy,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    // After switching the policy the crate also sets the thread's nice value to 0, which an
    // unprivileged process started at a higher nice value may not do: that error comes after the
    // policy took effect, so the policy is read back instead of trusting the result.
    let _ = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle);
    thread_schedule_policy().ok() == Some(idle)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_sched_idle() -> bool {
    false
}

/// Gives the calling thread nice 19 under the normal policy; whether that worked. Raising one's
/// own nice value needs no privilege.
fn set_nice_19() -> bool {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let normal = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
    // ThreadPriority::Min under a normal policy is the highest nice value, 19.
    set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, normal).is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// `(policy, nice)` of the calling thread from `/proc/thread-self/stat` (fields 41 and 19).
    fn own_scheduling() -> (u32, i32) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 2 (comm) may hold spaces and parentheses: split after the last ')'.
        let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        // rest[0] is field 3, so field N is rest[N - 3].
        (rest[41 - 3].parse().unwrap(), rest[19 - 3].parse().unwrap())
    }

    /// Linux's SCHED_IDLE policy number (include/uapi/linux/sched.h).
    const SCHED_IDLE: u32 = 5;

    #[tokio::test]
    async fn jobs_run_on_named_threads_under_sched_idle() {
        let pool = HashPool::start(2).unwrap();
        let (name, (policy, _nice)) = pool
            .run(|| {
                (
                    std::thread::current().name().map(str::to_owned),
                    own_scheduling(),
                )
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        assert_eq!(
            policy, SCHED_IDLE,
            "a hashing thread is not under SCHED_IDLE"
        );
        // The test's own thread, which called into the pool, keeps the normal policy (0).
        assert_eq!(own_scheduling().0, 0);
    }

    #[test]
    fn the_fallback_is_nice_19() {
        // The fallback on its own, on a throwaway thread.
        let (set, scheduling) = std::thread::spawn(|| (set_nice_19(), own_scheduling()))
            .join()
            .unwrap();
        assert!(set);
        assert_eq!(scheduling, (0, 19));
    }

    #[tokio::test]
    async fn as_many_threads_as_turns_and_a_panic_keeps_the_thread() {
        let pool = HashPool::start(1).unwrap();
        let turn = pool.turn().await.unwrap();
        // One turn: a second caller waits for it.
        assert!(pool.turns.try_acquire().is_err());
        assert!(pool.run(|| panic!("hash failed")).await.is_err());
        // The one thread survived the panic and still answers.
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
        drop(turn);
        assert!(pool.turns.try_acquire().is_ok());
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_is_skipped() {
        let pool = Arc::new(HashPool::start(1).unwrap());
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        // Occupy the only thread until released.
        let p = Arc::clone(&pool);
        let busy = tokio::spawn(async move {
            p.run(move || {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
            })
            .await
        });
        started_rx.await.unwrap();
        // Queue a job behind it, then stop waiting for it.
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let gave_up = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            pool.run(move || flag.store(true, std::sync::atomic::Ordering::SeqCst)),
        )
        .await;
        assert!(gave_up.is_err());
        release_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // A job queued after the abandoned one runs only once the thread has passed that one.
        assert_eq!(pool.run(|| 1).await.unwrap(), 1);
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }
}
