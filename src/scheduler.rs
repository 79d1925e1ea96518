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
use crate::translate::{SegmentTranslator, Translation, Translator};

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
}

/// The scheduler of one model: a thread that runs the rounds.
pub struct Scheduler {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scheduler {
    /// Starts the scheduler of `translator` (a thread of its own, until it is dropped).
    pub fn start(
        translator: Arc<Translator>,
        options: SchedulerOptions,
        metrics: Arc<dyn SchedulerObserver>,
    ) -> Scheduler {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            options,
            metrics,
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("tolk-scheduler".into())
                .spawn(move || run(&shared, &translator))
                .ok()
        };
        Scheduler { shared, thread }
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
        if let Ok(mut q) = self.shared.queue.lock() {
            q.closed = true;
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The error of a request whose segments would overflow the queue.
pub(crate) const QUEUE_FULL: &str = "the translation queue is full";

/// The error of a request whose client went away.
pub(crate) const CANCELLED: &str = "the request was cancelled";

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
                .map_err(|_| Error::Internal("the scheduler's queue is poisoned".into()))?;
            if q.closed {
                return Err(Error::Internal("the scheduler has stopped".into()));
            }
            if q.queued + texts.len() > self.shared.options.max_queued && q.queued > 0 {
                return Err(Error::Internal(QUEUE_FULL.into()));
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
        results
            .recv()
            .map_err(|_| Error::Internal(CANCELLED.into()))?
    }
}

/// The scheduler's loop: wait for segments, gather a round, translate it, hand out the results.
fn run(shared: &Shared, translator: &Translator) {
    while let Some((generation, round)) = next_round(shared) {
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
        let result = translator.translate_with(&refs, &generation);
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
                let message = e.to_string();
                for (job, _) in &round {
                    if let Ok(j) = job.lock() {
                        let _ = j.reply.send(Err(Error::Internal(format!(
                            "translation failed: {message}"
                        ))));
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
