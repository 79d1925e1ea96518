//! Batching across documents: the segments of every document in flight (the server's requests,
//! the records of a JSON-lines corpus) go to one scheduler per model, which translates them in
//! rounds. A round waits a few milliseconds for segments to
//! gather (or until a batch is full), takes each request's segments in turn so that one huge
//! request cannot starve small ones (a request gets at most its share of a round while others
//! wait), and hands them to the translator in one call, which sorts them by length into padded
//! batches within the token budget. Each request gets its own results back, in order.
//!
//! Requests whose client went away are dropped from the queue; the queue has a bound, and a
//! request that would pass it is refused at once rather than queued.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::translate::{SegmentTranslator, Translation};

/// What a scheduler reports (the server counts it for `/metrics`); `()` ignores it.
pub trait SchedulerObserver: Send + Sync {
    /// Segments waiting now.
    fn queue_depth(&self, segments: usize) {
        let _ = segments;
    }

    /// A round of `segments` segments from `requests` documents, `tokens` generated in `took`.
    fn batch(&self, segments: usize, requests: usize, tokens: usize, took: Duration) {
        let _ = (segments, requests, tokens, took);
    }
}

impl SchedulerObserver for () {}

/// How rounds are formed.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Most segments in one round. Default: the translator's batch size (32).
    pub round_segments: usize,
    /// How long a round waits for more segments once the first has arrived. Default 5 ms.
    pub max_wait: Duration,
    /// Most segments waiting at once; more are refused. Default 4096.
    pub max_queued: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            round_segments: 32,
            max_wait: Duration::from_millis(5),
            max_queued: 4096,
        }
    }
}

/// One call of a request: its segments, and where their translations go.
struct Job {
    request: u64,
    texts: Vec<String>,
    /// Segments handed to a round so far.
    taken: usize,
    results: Vec<Option<Translation>>,
    done: usize,
    reply: mpsc::Sender<Result<Vec<Translation>>>,
    cancelled: Arc<AtomicBool>,
}

/// Jobs with the same generation settings: they can share a batch.
struct Group {
    generation: GenerationConfig,
    jobs: VecDeque<Arc<Mutex<Job>>>,
}

#[derive(Default)]
struct Queue {
    groups: Vec<Group>,
    queued: usize,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    options: SchedulerOptions,
    metrics: Arc<dyn SchedulerObserver>,
    /// A loop is serving the queue (set by [`Scheduler::serve`], cleared when it ends).
    running: AtomicBool,
}

/// The scheduler of one model: a loop that runs the rounds, on a thread of its own
/// ([`Scheduler::start`]) or on one the caller scopes ([`Scheduler::new`] and
/// [`Scheduler::serve`]).
///
/// It cannot hang its clients: a round that fails or panics fails exactly its own segments'
/// requests ([`SchedulerError::Failed`], [`SchedulerError::Panicked`], with a log line) and the
/// loop goes on; if the loop ends for any reason but [`Scheduler::close`], every queued request
/// fails at once with [`SchedulerError::Stopped`], new ones are refused, and
/// [`Scheduler::is_running`] says so (the server's `/readyz` turns 503).
pub struct Scheduler {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scheduler {
    /// A scheduler whose loop the caller runs with [`Scheduler::serve`] (for a translator
    /// borrowed in a thread scope).
    pub fn new(options: SchedulerOptions, metrics: Arc<dyn SchedulerObserver>) -> Scheduler {
        Scheduler {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                wake: Condvar::new(),
                options,
                metrics,
                running: AtomicBool::new(true),
            }),
            thread: None,
        }
    }

    /// Starts the scheduler of `translator` on a thread of its own, until it is dropped.
    pub fn start(
        translator: Arc<dyn SegmentTranslator>,
        options: SchedulerOptions,
        metrics: Arc<dyn SchedulerObserver>,
    ) -> Result<Scheduler> {
        let mut scheduler = Scheduler::new(options, metrics);
        let shared = Arc::clone(&scheduler.shared);
        let thread = std::thread::Builder::new()
            .name("tolk-scheduler".into())
            .spawn(move || serve(&shared, &*translator))
            .map_err(|e| Error::io("<the scheduler's thread>", e))?;
        scheduler.thread = Some(thread);
        Ok(scheduler)
    }

    /// Runs the rounds with `translator` until [`Scheduler::close`] (or the scheduler is
    /// dropped); fails what is queued if it ends otherwise.
    pub fn serve(&self, translator: &dyn SegmentTranslator) {
        serve(&self.shared, translator);
    }

    /// Stops the loop once the round in progress is done; requests still queued, and new ones,
    /// fail with [`SchedulerError::Stopped`].
    pub fn close(&self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.closed = true;
        }
        self.shared.wake.notify_all();
    }

    /// Whether its loop is serving (false once it has ended, for whatever reason).
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    /// A translator for one document: its segments go through this scheduler; setting
    /// `cancelled` drops them from the queue.
    pub fn client(&self, request: u64, cancelled: Arc<AtomicBool>) -> SchedulerClient {
        SchedulerClient {
            shared: Arc::clone(&self.shared),
            request,
            cancelled,
        }
    }

    /// Segments waiting.
    pub fn queued(&self) -> usize {
        self.shared.queue.lock().map_or(0, |q| q.queued)
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Why the scheduler did not translate a request's segments.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// Its segments would overflow the queue: try again later.
    #[error(
        "the translation queue is full ({queued} segments waiting, at most {max}); try again later"
    )]
    Busy {
        /// Segments waiting.
        queued: usize,
        /// The queue's bound ([`SchedulerOptions::max_queued`]).
        max: usize,
    },
    /// Its document was cancelled (the client went away) before its segments were done.
    #[error("the request was cancelled")]
    Cancelled,
    /// The scheduler has stopped (closed, or its thread could not go on): nothing more is
    /// translated by it.
    #[error("the translation scheduler has stopped")]
    Stopped,
    /// The round that held its segments failed; the scheduler goes on with the others.
    #[error("translation failed: {source}")]
    Failed {
        /// The translator's error.
        source: Arc<Error>,
    },
    /// The round that held its segments panicked (a bug); the scheduler goes on with the others.
    #[error("translation failed: the translator panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
}

/// One document's way to the scheduler (a [`SegmentTranslator`]).
pub struct SchedulerClient {
    shared: Arc<Shared>,
    request: u64,
    cancelled: Arc<AtomicBool>,
}

impl SegmentTranslator for SchedulerClient {
    fn translate_segments(
        &self,
        texts: &[&str],
        generation: &GenerationConfig,
    ) -> Result<Vec<Translation>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, results) = mpsc::channel();
        {
            let mut q = self
                .shared
                .queue
                .lock()
                .map_err(|_| SchedulerError::Stopped)?;
            if q.closed || !self.shared.running.load(Ordering::Acquire) {
                return Err(SchedulerError::Stopped.into());
            }
            let max = self.shared.options.max_queued;
            if q.queued + texts.len() > max && q.queued > 0 {
                return Err(SchedulerError::Busy {
                    queued: q.queued,
                    max,
                }
                .into());
            }
            let job = Arc::new(Mutex::new(Job {
                request: self.request,
                texts: texts.iter().map(|t| t.to_string()).collect(),
                taken: 0,
                results: vec![None; texts.len()],
                done: 0,
                reply,
                cancelled: Arc::clone(&self.cancelled),
            }));
            q.queued += texts.len();
            match q.groups.iter_mut().find(|g| &g.generation == generation) {
                Some(g) => g.jobs.push_back(job),
                None => q.groups.push(Group {
                    generation: generation.clone(),
                    jobs: VecDeque::from([job]),
                }),
            }
            self.shared.metrics.queue_depth(q.queued);
        }
        self.shared.wake.notify_all();
        // A job is answered once, or dropped with its sender when its request is cancelled.
        results.recv().map_err(|_| SchedulerError::Cancelled)?
    }
}

/// The scheduler's loop: wait for segments, gather a round, translate it, hand out the
/// results; a round that fails or panics fails its own jobs. When the loop ends without being
/// closed (a poisoned queue), whatever is queued fails at once and new work is refused.
fn serve(shared: &Shared, translator: &dyn SegmentTranslator) {
    shared.running.store(true, Ordering::Release);
    /// Marks the loop ended and fails what is queued, however the loop ends.
    struct Ended<'a>(&'a Shared);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            self.0.running.store(false, Ordering::Release);
            let mut q = match self.0.queue.lock() {
                Ok(q) => q,
                Err(poisoned) => poisoned.into_inner(),
            };
            if !q.closed {
                tracing::error!("the translation scheduler stopped; failing the requests queued");
            }
            q.closed = true;
            for g in q.groups.drain(..) {
                for job in g.jobs {
                    if let Ok(j) = job.lock() {
                        let _ = j.reply.send(Err(SchedulerError::Stopped.into()));
                    }
                }
            }
            q.queued = 0;
        }
    }
    let _ended = Ended(shared);
    while let Some((generation, round)) = next_round(shared) {
        run_round(shared, translator, &generation, &round);
    }
}

/// One round: its segments translated together, and each job's results (or the round's
/// failure) handed back.
fn run_round(
    shared: &Shared,
    translator: &dyn SegmentTranslator,
    generation: &GenerationConfig,
    round: &[(Arc<Mutex<Job>>, usize)],
) {
    let texts: Vec<String> = round
        .iter()
        .map(|(job, i)| job.lock().map(|j| j.texts[*i].clone()).unwrap_or_default())
        .collect();
    let requests = {
        let mut ids: Vec<u64> = round
            .iter()
            .filter_map(|(job, _)| job.lock().ok().map(|j| j.request))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    let started = Instant::now();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        translator.translate_segments(&refs, generation)
    }));
    let result = match result {
        Ok(Ok(t)) if t.len() == round.len() => Ok(t),
        Ok(Ok(t)) => Err(SchedulerError::Failed {
            source: Arc::new(Error::Internal(format!(
                "the translator gave {} translations for {} segments",
                t.len(),
                round.len()
            ))),
        }),
        Ok(Err(e)) => Err(SchedulerError::Failed {
            source: Arc::new(e),
        }),
        Err(panic) => Err(SchedulerError::Panicked {
            message: panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into()),
        }),
    };
    let tokens = result
        .as_ref()
        .map_or(0, |ts| ts.iter().map(|t| t.ids.len()).sum());
    shared
        .metrics
        .batch(round.len(), requests, tokens, started.elapsed());
    match result {
        Ok(translations) => {
            for ((job, i), t) in round.iter().zip(translations) {
                deliver(job, *i, t);
            }
        }
        Err(e) => {
            tracing::error!(
                segments = round.len(),
                requests,
                "a round failed; its requests get the error: {e}"
            );
            // Each job of the round fails once, and leaves the queue (its other segments are
            // not translated).
            let mut failed: Vec<*const Mutex<Job>> = Vec::new();
            for (job, _) in round {
                if failed.contains(&Arc::as_ptr(job)) {
                    continue;
                }
                failed.push(Arc::as_ptr(job));
                // Nothing more of it is taken: it counts as done. (The job's lock is let go
                // before the queue's is taken: the queue's holders lock jobs.)
                let left = match job.lock() {
                    Ok(mut j) => {
                        let _ = j.reply.send(Err(e.clone().into()));
                        let left = j.texts.len() - j.taken;
                        j.taken = j.texts.len();
                        left
                    }
                    Err(_) => 0,
                };
                if left > 0 {
                    if let Ok(mut q) = shared.queue.lock() {
                        q.queued -= left.min(q.queued);
                        for g in &mut q.groups {
                            g.jobs.retain(|other| !Arc::ptr_eq(other, job));
                        }
                        q.groups.retain(|g| !g.jobs.is_empty());
                    }
                }
            }
        }
    }
}

fn deliver(job: &Mutex<Job>, i: usize, t: Translation) {
    let Ok(mut j) = job.lock() else { return };
    if let Some(slot) = j.results.get_mut(i) {
        *slot = Some(t);
        j.done += 1;
    }
    if j.done == j.results.len() {
        let results: Vec<Translation> = j.results.iter_mut().filter_map(Option::take).collect();
        let _ = j.reply.send(Ok(results));
    }
}

/// Waits for the next round: the segments (job, index) of one generation group, at most
/// `round_segments`, each request taking at most its share while others wait. `None` when the
/// scheduler closes.
#[allow(clippy::type_complexity)]
fn next_round(shared: &Shared) -> Option<(GenerationConfig, Vec<(Arc<Mutex<Job>>, usize)>)> {
    let opts = &shared.options;
    let mut q = shared.queue.lock().ok()?;
    loop {
        drop_cancelled(&mut q);
        if q.closed {
            return None;
        }
        if q.queued > 0 {
            break;
        }
        q = shared.wake.wait(q).ok()?;
    }
    // The first segments are here: wait a little for more, unless a round is full already.
    let deadline = Instant::now() + opts.max_wait;
    while q.queued < opts.round_segments {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        q = shared.wake.wait_timeout(q, deadline - now).ok()?.0;
        if q.closed {
            return None;
        }
    }
    drop_cancelled(&mut q);
    // The group whose oldest job has waited longest: the first group (groups keep arrival order
    // of their first job; emptied groups are removed).
    let group = q.groups.first_mut()?;
    let generation = group.generation.clone();
    let mut round = Vec::with_capacity(opts.round_segments);
    let jobs: Vec<Arc<Mutex<Job>>> = group.jobs.iter().cloned().collect();
    let mut requests: Vec<u64> = jobs
        .iter()
        .filter_map(|j| j.lock().ok().map(|j| j.request))
        .collect();
    requests.sort_unstable();
    requests.dedup();
    let share = (opts.round_segments / requests.len().max(1)).max(1);
    let mut taken: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    // First pass: each request its share, oldest job first; second pass: fill what is left.
    for cap in [share, usize::MAX] {
        for job in &jobs {
            if round.len() >= opts.round_segments {
                break;
            }
            let Ok(mut j) = job.lock() else { continue };
            let took = taken.entry(j.request).or_insert(0);
            while j.taken < j.texts.len() && *took < cap && round.len() < opts.round_segments {
                round.push((Arc::clone(job), j.taken));
                j.taken += 1;
                *took += 1;
            }
        }
    }
    q.queued -= round.len();
    let group = q.groups.first_mut()?;
    group
        .jobs
        .retain(|j| j.lock().is_ok_and(|j| j.taken < j.texts.len()));
    q.groups.retain(|g| !g.jobs.is_empty());
    shared.metrics.queue_depth(q.queued);
    Some((generation, round))
}

/// Removes the jobs whose request was cancelled, and the segments they still had waiting.
fn drop_cancelled(q: &mut Queue) {
    let mut dropped = 0;
    for g in &mut q.groups {
        g.jobs.retain(|job| {
            let Ok(j) = job.lock() else { return false };
            if j.cancelled.load(Ordering::Acquire) {
                dropped += j.texts.len() - j.taken;
                false
            } else {
                true
            }
        });
    }
    q.groups.retain(|g| !g.jobs.is_empty());
    q.queued -= dropped.min(q.queued);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Translates a text as itself, except on the rounds it is told to panic or fail on.
    struct Rounds {
        calls: AtomicUsize,
        panic_on: usize,
        fail_on: usize,
    }

    impl SegmentTranslator for Rounds {
        fn translate_segments(
            &self,
            texts: &[&str],
            _: &GenerationConfig,
        ) -> Result<Vec<Translation>> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if call == self.panic_on {
                panic!("round {call} panics");
            }
            if call == self.fail_on {
                return Err(Error::Internal(format!("round {call} fails")));
            }
            Ok(texts
                .iter()
                .map(|t| Translation {
                    text: t.to_string(),
                    ids: Vec::new(),
                    score: 0.0,
                    source_tokens: 1,
                    hypotheses: Vec::new(),
                    pieces: 1,
                    flag: None,
                    alignment: None,
                })
                .collect())
        }
    }

    #[test]
    fn a_bad_round_fails_its_own_requests_and_the_scheduler_goes_on() {
        let translator = Arc::new(Rounds {
            calls: AtomicUsize::new(0),
            panic_on: 1,
            fail_on: 2,
        });
        let s = Scheduler::start(translator, SchedulerOptions::default(), Arc::new(())).unwrap();
        let g = GenerationConfig::default();
        let ask = |request: u64| {
            s.client(request, Arc::new(AtomicBool::new(false)))
                .translate_segments(&["een", "twee"], &g)
        };
        assert_eq!(ask(0).unwrap()[1].text, "twee");
        let e = ask(1).unwrap_err();
        assert!(
            matches!(e, Error::Scheduler(SchedulerError::Panicked { ref message }) if message == "round 1 panics"),
            "{e}"
        );
        let e = ask(2).unwrap_err();
        match e {
            Error::Scheduler(SchedulerError::Failed { source }) => {
                assert_eq!(
                    source.to_string(),
                    Error::Internal("round 2 fails".into()).to_string()
                )
            }
            e => panic!("{e}"),
        }
        assert!(s.is_running());
        assert_eq!(ask(3).unwrap().len(), 2);
        // Closed: new requests are refused at once, typed.
        s.close();
        let e = ask(4).unwrap_err();
        assert!(
            matches!(e, Error::Scheduler(SchedulerError::Stopped)),
            "{e}"
        );
    }

    #[test]
    fn a_full_queue_refuses_with_a_typed_error() {
        // No loop serves this one: what is queued stays queued.
        let s = Scheduler::new(
            SchedulerOptions {
                max_queued: 2,
                ..SchedulerOptions::default()
            },
            Arc::new(()),
        );
        let g = GenerationConfig::default();
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| {
                s.client(0, Arc::new(AtomicBool::new(false)))
                    .translate_segments(&["a", "b"], &g)
            });
            while s.queued() < 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let e = s
                .client(1, Arc::new(AtomicBool::new(false)))
                .translate_segments(&["c"], &g)
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Scheduler(SchedulerError::Busy { queued: 2, max: 2 })
                ),
                "{e}"
            );
            // A loop that ends fails what is queued at once.
            s.close();
            let rounds = Rounds {
                calls: AtomicUsize::new(0),
                panic_on: usize::MAX,
                fail_on: usize::MAX,
            };
            s.serve(&rounds);
            let e = waiting.join().unwrap().unwrap_err();
            assert!(
                matches!(e, Error::Scheduler(SchedulerError::Stopped)),
                "{e}"
            );
            assert!(!s.is_running());
        });
    }
}
