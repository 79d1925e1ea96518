//! Batching across documents, step by step: the segments of every document in flight (the
//! server's requests, the records of a JSON-lines corpus) go to one scheduler per model, which
//! keeps one batch decoding: the translator's [`SegmentStream`] (for the [`Translator`], a
//! [`TranslationStream`]: a segment joins at the next decoding step and leaves when it is
//! finished, with exactly the tokens it gets alone).
//!
//! - With nothing in flight, the scheduler waits a few milliseconds for segments to gather (or
//!   until a batch is full).
//! - While the batch runs, each free place goes to the request with the fewest segments in it
//!   (the oldest first among equals), so one huge request cannot starve small ones.
//! - Once the batch is busy (a quarter full), a small request (at most a quarter of the batch in
//!   segments) starts at the next step, however full the batch, in the stream's urgent lane
//!   (see [`crate::runtime`]'s `Batcher`: a second batch of at most a quarter of the size, which
//!   steps first while it has work, up to as many rows as the main batch holds between two of
//!   the main batch's steps).
//! - Requests with other generation settings wait until the batch drains, once their oldest
//!   request is the oldest waiting.
//!
//! Each request gets its own results back, in order. Requests whose client went away are dropped
//! from the queue (their segments already in the batch finish); the queue has a bound, and a
//! request that would pass it is refused at once rather than queued.
//!
//! [`Translator`]: crate::translate::Translator
//! [`TranslationStream`]: crate::translate::TranslationStream

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::GenerationConfig;
use crate::error::{Error, Result};
use crate::translate::{SegmentStream, SegmentTranslator, Translation};

/// What a scheduler reports (the server counts it for `/metrics`); `()` ignores it.
pub trait SchedulerObserver: Send + Sync {
    /// Segments waiting now.
    fn queue_depth(&self, segments: usize) {
        let _ = segments;
    }

    /// A decoding step of a batch of `segments` segments from `requests` documents, which took
    /// `took`; the segments it finished had `tokens` tokens.
    fn batch(&self, segments: usize, requests: usize, tokens: usize, took: Duration) {
        let _ = (segments, requests, tokens, took);
    }
}

impl SchedulerObserver for () {}

/// How the batch is filled.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Most segments in the batch (beyond it, only small requests' segments, in the urgent lane
    /// of a quarter of it). Default: the translator's batch size (32).
    pub round_segments: usize,
    /// How long an idle scheduler waits for more segments once the first has arrived. Default
    /// 5 ms.
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
    /// Its place in the order of arrival.
    arrival: u64,
    texts: Vec<String>,
    /// Segments handed to the batch so far.
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
    arrivals: u64,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    options: SchedulerOptions,
    metrics: Arc<dyn SchedulerObserver>,
    /// A loop is serving the queue (set by [`Scheduler::serve`], cleared when it ends).
    running: AtomicBool,
}

/// The scheduler of one model: a loop that runs the batch, on a thread of its own
/// ([`Scheduler::start`]) or on one the caller scopes ([`Scheduler::new`] and
/// [`Scheduler::serve`]).
///
/// It cannot hang its clients: a step that fails or panics fails exactly its own segments'
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

    /// Runs the batch with `translator` until [`Scheduler::close`] (or the scheduler is
    /// dropped); fails what is queued if it ends otherwise.
    pub fn serve(&self, translator: &dyn SegmentTranslator) {
        serve(&self.shared, translator);
    }

    /// Stops the loop once the step in progress is done; requests still queued, and new ones,
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
    /// The step (or round) that held its segments failed; the scheduler goes on with the others.
    #[error("translation failed: {source}")]
    Failed {
        /// The translator's error.
        source: Arc<Error>,
    },
    /// The step (or round) that held its segments panicked (a bug); the scheduler goes on with the
    /// others.
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
            q.arrivals += 1;
            let job = Arc::new(Mutex::new(Job {
                request: self.request,
                arrival: q.arrivals,
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

/// A segment in the stream: its job and its index there.
type Slot = (Arc<Mutex<Job>>, usize);

/// The scheduler's loop: segments go into one running [`SegmentStream`] of the translator as
/// it has room (each request its share), the stream steps, and finished segments go back to
/// their jobs. A step that fails or panics fails the jobs with segments in it, and the loop
/// goes on with a new stream. When the loop ends without being closed (a poisoned queue),
/// whatever is queued fails at once and new work is refused.
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
    let mut stream: Option<(GenerationConfig, Box<dyn SegmentStream + '_>)> = None;
    // Each segment in the stream: its slot and whether it is urgent.
    let mut flight: HashMap<u64, (Slot, bool)> = HashMap::new();
    let mut next_key = 0u64;
    loop {
        let current = stream.as_ref().map(|(g, s)| (g, s.room()));
        let mut in_flight = InFlight::default();
        for ((job, _), urgent) in flight.values() {
            let request = job.lock().map_or(u64::MAX, |j| j.request);
            *in_flight.by_request.entry(request).or_insert(0) += 1;
            if *urgent {
                in_flight.urgent += 1;
            } else {
                in_flight.main += 1;
            }
        }
        let Some(taken) = next_segments(shared, current, &in_flight) else {
            return;
        };
        if let Some((generation, segments)) = taken {
            if stream.as_ref().is_none_or(|(g, _)| *g != generation) {
                match catch(|| translator.stream(&generation)) {
                    Ok(s) => stream = Some((generation, s)),
                    Err(e) => {
                        let slots: Vec<Slot> = segments.into_iter().map(|(s, _)| s).collect();
                        fail(shared, &slots, &e);
                        continue;
                    }
                }
            }
            let Some((_, s)) = stream.as_mut() else {
                continue;
            };
            for ((job, i), urgent) in segments {
                let text = job.lock().map(|j| j.texts[i].clone()).unwrap_or_default();
                let key = next_key;
                next_key += 1;
                match catch(|| s.add(key, &text, urgent)) {
                    Ok(()) => {
                        flight.insert(key, ((job, i), urgent));
                    }
                    Err(e) => fail(shared, &[(job, i)], &e),
                }
            }
        }
        let Some((_, s)) = stream.as_mut() else {
            continue;
        };
        if s.in_flight() == 0 {
            continue;
        }
        let started = Instant::now();
        let requests = {
            let mut ids: Vec<u64> = flight
                .values()
                .filter_map(|((job, _), _)| job.lock().ok().map(|j| j.request))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        };
        let segments = flight.len();
        match catch(|| s.step()) {
            Ok(finished) => {
                let tokens = finished.iter().map(|(_, t)| t.ids.len()).sum();
                shared
                    .metrics
                    .batch(segments, requests, tokens, started.elapsed());
                for (key, t) in finished {
                    if let Some(((job, i), _)) = flight.remove(&key) {
                        deliver(&job, i, t);
                    }
                }
            }
            Err(e) => {
                tracing::error!(
                    segments,
                    requests,
                    "a translation step failed; its requests get the error: {e}"
                );
                let slots: Vec<Slot> = flight.drain().map(|(_, (slot, _))| slot).collect();
                fail(shared, &slots, &e);
                // Its state is lost: the next segments start a new stream.
                stream = None;
            }
        }
    }
}

/// Runs `f`, turning an error or a panic into the [`SchedulerError`] its requests get.
fn catch<T>(f: impl FnOnce() -> Result<T>) -> std::result::Result<T, SchedulerError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(t)) => Ok(t),
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
    }
}

/// Fails the jobs of `slots` with `e`, each once; they leave the queue (their other segments
/// are not translated, and their results still in flight are dropped).
fn fail(shared: &Shared, slots: &[Slot], e: &SchedulerError) {
    let mut failed: Vec<*const Mutex<Job>> = Vec::new();
    for (job, _) in slots {
        if failed.contains(&Arc::as_ptr(job)) {
            continue;
        }
        failed.push(Arc::as_ptr(job));
        // Nothing more of it is taken: it counts as done. (The job's lock is let go before the
        // queue's is taken: the queue's holders lock jobs.)
        let left = match job.lock() {
            Ok(mut j) => {
                let _ = j.reply.send(Err(e.clone().into()));
                // Later results find it answered.
                j.done = usize::MAX;
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

fn deliver(job: &Mutex<Job>, i: usize, t: Translation) {
    let Ok(mut j) = job.lock() else { return };
    if j.done == usize::MAX {
        // Already answered with an error.
        return;
    }
    if let Some(slot) = j.results.get_mut(i) {
        *slot = Some(t);
        j.done += 1;
    }
    if j.done == j.results.len() {
        let results: Vec<Translation> = j.results.iter_mut().filter_map(Option::take).collect();
        let _ = j.reply.send(Ok(results));
    }
}

/// The segments in the stream: by request, and in each lane.
#[derive(Debug, Default)]
struct InFlight {
    by_request: HashMap<u64, usize>,
    main: usize,
    urgent: usize,
}

/// The next segments for the stream, each with whether it is urgent (see [`take_segments`]):
/// `None` when the scheduler closes; `Some(None)` when the stream should step without new
/// segments.
///
/// With nothing in flight it waits for segments, then a little more (up to `max_wait`) for a
/// batch to fill. While the stream runs (`current`: its settings and room) it does not wait: it
/// takes what fits. Either way from the group whose oldest job has waited longest; while the
/// stream runs, only when that is the stream's own group (otherwise the stream drains and the
/// other group's settings come next).
#[allow(clippy::type_complexity)]
fn next_segments(
    shared: &Shared,
    current: Option<(&GenerationConfig, usize)>,
    in_flight: &InFlight,
) -> Option<Option<(GenerationConfig, Vec<(Slot, bool)>)>> {
    let opts = &shared.options;
    let round = opts.round_segments;
    let mut q = shared.queue.lock().ok()?;
    drop_cancelled(&mut q);
    if q.closed {
        return None;
    }
    if in_flight.main + in_flight.urgent > 0 {
        let Some((generation, room)) = current else {
            return Some(None);
        };
        let free = room.min(round.saturating_sub(in_flight.main));
        // Small requests go to the urgent lane once the main batch is busy.
        let urgent = if in_flight.main >= reserve(round) {
            reserve(round).saturating_sub(in_flight.urgent)
        } else {
            0
        };
        let Some(group) = oldest_group(&q) else {
            return Some(None);
        };
        if (free == 0 && urgent == 0) || &q.groups[group].generation != generation {
            return Some(None);
        }
        let taken = take_segments(
            shared,
            &mut q,
            group,
            free,
            urgent,
            reserve(round),
            &in_flight.by_request,
        );
        return Some(Some((generation.clone(), taken)));
    }
    while q.queued == 0 {
        q = shared.wake.wait(q).ok()?;
        drop_cancelled(&mut q);
        if q.closed {
            return None;
        }
    }
    // The first segments are here: wait a little for more, unless a batch is full already.
    let deadline = Instant::now() + opts.max_wait;
    while q.queued < round {
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
    let Some(group) = oldest_group(&q) else {
        return Some(None);
    };
    let generation = q.groups[group].generation.clone();
    let room = current
        .filter(|(g, _)| **g == generation)
        .map_or(usize::MAX, |(_, room)| room);
    let n = room.min(round).max(1);
    let taken = take_segments(
        shared,
        &mut q,
        group,
        n,
        0,
        reserve(round),
        &in_flight.by_request,
    );
    Some(Some((generation, taken)))
}

/// The group whose first job came first.
fn oldest_group(q: &Queue) -> Option<usize> {
    q.groups
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let front = g.jobs.front()?.lock().ok()?;
            Some((front.arrival, i))
        })
        .min()
        .map(|(_, i)| i)
}

/// The urgent lane's size, and the most segments of a request that counts as small: a quarter
/// of the batch.
fn reserve(batch: usize) -> usize {
    (batch / 4).max(1)
}

/// Takes segments of group `group`: first, at most `urgent` urgent ones, the segments of small
/// requests (at most `small` segments: a sentence typed into the page), oldest first, so that
/// they start at the next step in the urgent lane however busy the main batch is; then at most
/// `n` for the main batch, one at a time to the request with the fewest segments in the stream
/// (`in_flight`, by request) and taken so far, the oldest job first among equals, so that no
/// request waits behind another's backlog.
fn take_segments(
    shared: &Shared,
    q: &mut Queue,
    group: usize,
    n: usize,
    urgent: usize,
    small: usize,
    in_flight: &HashMap<u64, usize>,
) -> Vec<(Slot, bool)> {
    use std::cmp::Reverse;
    let Some(group) = q.groups.get_mut(group) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(n.min(1024));
    let mut held: HashMap<u64, usize> = in_flight.clone();
    let jobs: Vec<Arc<Mutex<Job>>> = group.jobs.iter().cloned().collect();
    let mut took_urgent = 0;
    for job in &jobs {
        if took_urgent >= urgent {
            break;
        }
        let Ok(mut j) = job.lock() else { continue };
        if j.texts.len() > small {
            continue;
        }
        while j.taken < j.texts.len() && took_urgent < urgent {
            out.push(((Arc::clone(job), j.taken), true));
            j.taken += 1;
            took_urgent += 1;
            *held.entry(j.request).or_insert(0) += 1;
        }
    }
    // (segments held by its request, age order) of every job with segments left.
    let mut heap = std::collections::BinaryHeap::new();
    let requests: Vec<Option<u64>> = jobs
        .iter()
        .map(|job| {
            job.lock()
                .ok()
                .filter(|j| j.taken < j.texts.len())
                .map(|j| j.request)
        })
        .collect();
    for (order, request) in requests.iter().enumerate() {
        if let Some(r) = request {
            heap.push(Reverse((held.get(r).copied().unwrap_or(0), order)));
        }
    }
    let mut normal = 0;
    while normal < n {
        let Some(Reverse((count, order))) = heap.pop() else {
            break;
        };
        let (Some(request), job) = (requests[order], &jobs[order]) else {
            continue;
        };
        let now = held.get(&request).copied().unwrap_or(0);
        if now != count {
            // Its request took more since: back in line with its real count.
            heap.push(Reverse((now, order)));
            continue;
        }
        let Ok(mut j) = job.lock() else { continue };
        if j.taken >= j.texts.len() {
            continue;
        }
        out.push(((Arc::clone(job), j.taken), false));
        normal += 1;
        j.taken += 1;
        *held.entry(request).or_insert(0) += 1;
        if j.taken < j.texts.len() {
            heap.push(Reverse((now + 1, order)));
        }
    }
    q.queued -= out.len().min(q.queued);
    group
        .jobs
        .retain(|j| j.lock().is_ok_and(|j| j.taken < j.texts.len()));
    q.groups.retain(|g| !g.jobs.is_empty());
    shared.metrics.queue_depth(q.queued);
    out
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

    /// A text "translated" as itself, one token long.
    fn echo(text: String) -> Translation {
        Translation {
            text,
            ids: vec![1],
            score: 0.0,
            source_tokens: 1,
            hypotheses: Vec::new(),
            pieces: 1,
            flag: None,
            alignment: None,
        }
    }

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
            Ok(texts.iter().map(|t| echo(t.to_string())).collect())
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

    /// Counts the steps the scheduler runs.
    #[derive(Default)]
    struct Steps(AtomicUsize);

    impl SchedulerObserver for Steps {
        fn batch(&self, _: usize, _: usize, _: usize, _: Duration) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_short_request_joins_a_running_long_one_at_the_next_step_with_its_own_result() {
        use crate::translate::{BatchOptions, LoadOptions, Translator};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/marian-tiny-trained");
        let translator = Translator::from_dir(&dir, &LoadOptions::default().with_cache(false))
            .unwrap()
            .with_batching(BatchOptions::default().with_max_batch_size(4));
        let long: Vec<String> = (0..24)
            .map(|i| {
                format!(
                    "Op dag {i} van de reis liepen we door de oude stad, langs de haven en de \
                     markt, en we aten vis met brood terwijl het zachtjes regende."
                )
            })
            .collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        let short = ["Goedemorgen!"];
        let generation = translator.generation().clone();
        let long_alone = translator.translate(&long).unwrap();
        let short_alone = translator.translate(&short).unwrap();
        let steps = Arc::new(Steps::default());
        let s = Scheduler::start(
            Arc::new(translator),
            SchedulerOptions {
                round_segments: 4,
                ..SchedulerOptions::default()
            },
            Arc::clone(&steps) as Arc<dyn SchedulerObserver>,
        )
        .unwrap();
        let long_done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let bulk = scope.spawn(|| {
                let out = s
                    .client(0, Arc::new(AtomicBool::new(false)))
                    .translate_segments(&long, &generation)
                    .unwrap();
                long_done.store(true, Ordering::SeqCst);
                out
            });
            // The long request is being decoded.
            while steps.0.load(Ordering::SeqCst) < 3 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let before = steps.0.load(Ordering::SeqCst);
            let got = s
                .client(1, Arc::new(AtomicBool::new(false)))
                .translate_segments(&short, &generation)
                .unwrap();
            let took = steps.0.load(Ordering::SeqCst) - before;
            assert!(
                !long_done.load(Ordering::SeqCst),
                "the long request ended first"
            );
            assert_eq!(got, short_alone);
            // Its own steps (its tokens, the step it joined at, and the main batch's steps in
            // between: one per as many urgent rows as the main batch has), not the batch's.
            assert!(
                took <= 2 * (short_alone[0].ids.len() + 2),
                "{took} steps for {} tokens",
                short_alone[0].ids.len()
            );
            assert_eq!(bulk.join().unwrap(), long_alone);
        });
    }

    /// A stream that fails or panics at chosen steps.
    struct Faulty {
        panic_at: usize,
        steps: AtomicUsize,
    }

    struct FaultyStream<'a> {
        of: &'a Faulty,
        texts: Vec<(u64, String)>,
    }

    impl SegmentTranslator for Faulty {
        fn translate_segments(&self, _: &[&str], _: &GenerationConfig) -> Result<Vec<Translation>> {
            unreachable!("the scheduler uses the stream")
        }

        fn stream<'a>(&'a self, _: &GenerationConfig) -> Result<Box<dyn SegmentStream + 'a>> {
            Ok(Box::new(FaultyStream {
                of: self,
                texts: Vec::new(),
            }))
        }
    }

    impl SegmentStream for FaultyStream<'_> {
        fn add(&mut self, key: u64, text: &str, _: bool) -> Result<()> {
            if text == "bad" {
                return Err(Error::Internal("a text the stream refuses".into()));
            }
            self.texts.push((key, text.to_string()));
            Ok(())
        }

        fn room(&self) -> usize {
            2usize.saturating_sub(self.texts.len())
        }

        fn in_flight(&self) -> usize {
            self.texts.len()
        }

        /// One text finishes per step, as itself.
        fn step(&mut self) -> Result<Vec<(u64, Translation)>> {
            let step = self.of.steps.fetch_add(1, Ordering::SeqCst);
            if step == self.of.panic_at {
                panic!("step {step} panics");
            }
            let (key, text) = self.texts.remove(0);
            Ok(vec![(key, echo(text))])
        }
    }

    #[test]
    fn a_panicking_step_fails_the_requests_in_the_stream_and_a_refused_text_its_own() {
        let faulty = Arc::new(Faulty {
            panic_at: 2,
            steps: AtomicUsize::new(0),
        });
        let s = Scheduler::start(faulty, SchedulerOptions::default(), Arc::new(())).unwrap();
        let g = GenerationConfig::default();
        let ask = |request: u64, texts: &[&str]| {
            s.client(request, Arc::new(AtomicBool::new(false)))
                .translate_segments(texts, &g)
        };
        // Steps 0 and 1.
        assert_eq!(ask(0, &["een", "twee"]).unwrap()[1].text, "twee");
        // Step 2 panics with "drie" in the stream: its request fails, typed.
        let e = ask(1, &["drie", "vier"]).unwrap_err();
        assert!(
            matches!(e, Error::Scheduler(SchedulerError::Panicked { ref message }) if message == "step 2 panics"),
            "{e}"
        );
        // A text the stream refuses fails its request only.
        let e = ask(2, &["vijf", "bad"]).unwrap_err();
        assert!(
            matches!(e, Error::Scheduler(SchedulerError::Failed { .. })),
            "{e}"
        );
        // A new stream serves the next ones.
        assert!(s.is_running());
        assert_eq!(ask(3, &["zes", "zeven", "acht"]).unwrap()[2].text, "acht");
    }

    /// Records every segment added with its urgency; one segment finishes per step (after a
    /// few milliseconds); no room while anything is in flight.
    #[derive(Default)]
    struct Recording {
        added: Mutex<Vec<(String, bool)>>,
        /// The most urgent segments in the stream at once.
        most_urgent: AtomicUsize,
    }

    struct RecordingStream<'a> {
        of: &'a Recording,
        texts: VecDeque<(u64, String, bool)>,
    }

    impl SegmentTranslator for Recording {
        fn translate_segments(&self, _: &[&str], _: &GenerationConfig) -> Result<Vec<Translation>> {
            unreachable!("the scheduler uses the stream")
        }

        fn stream<'a>(&'a self, _: &GenerationConfig) -> Result<Box<dyn SegmentStream + 'a>> {
            Ok(Box::new(RecordingStream {
                of: self,
                texts: VecDeque::new(),
            }))
        }
    }

    impl SegmentStream for RecordingStream<'_> {
        fn add(&mut self, key: u64, text: &str, urgent: bool) -> Result<()> {
            self.of
                .added
                .lock()
                .unwrap()
                .push((text.to_string(), urgent));
            self.texts.push_back((key, text.to_string(), urgent));
            let urgent_now = self.texts.iter().filter(|(_, _, u)| *u).count();
            self.of.most_urgent.fetch_max(urgent_now, Ordering::SeqCst);
            Ok(())
        }

        fn room(&self) -> usize {
            if self.texts.is_empty() {
                usize::MAX
            } else {
                0
            }
        }

        fn in_flight(&self) -> usize {
            self.texts.len()
        }

        fn step(&mut self) -> Result<Vec<(u64, Translation)>> {
            std::thread::sleep(Duration::from_millis(3));
            let Some((key, text, _)) = self.texts.pop_front() else {
                return Ok(Vec::new());
            };
            Ok(vec![(key, echo(text))])
        }
    }

    #[test]
    fn only_small_requests_take_the_urgent_lane_and_only_a_quarter_of_the_batch() {
        let recording = Arc::new(Recording::default());
        let s = Scheduler::start(
            Arc::clone(&recording) as Arc<dyn SegmentTranslator>,
            SchedulerOptions::default(),
            Arc::new(()),
        )
        .unwrap();
        let g = GenerationConfig::default();
        let texts = |p: &str, n: usize| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
        let (a, b) = (texts("a", 10), texts("b", 20));
        let small: Vec<Vec<String>> = (0..12).map(|i| texts(&format!("c{i}-"), 1)).collect();
        let ask = |request: u64, texts: &[String]| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            s.client(request, Arc::new(AtomicBool::new(false)))
                .translate_segments(&refs, &g)
                .map(|t| t.len())
        };
        let ask = &ask;
        std::thread::scope(|scope| {
            let first = scope.spawn(|| ask(0, &a));
            // A is in the batch (10 segments: busy), without room for more.
            while recording.added.lock().unwrap().len() < 10 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let big = scope.spawn(|| ask(1, &b));
            let smalls: Vec<_> = small
                .iter()
                .enumerate()
                .map(|(i, t)| scope.spawn(move || ask(2 + i as u64, t)))
                .collect();
            assert_eq!(first.join().unwrap().unwrap(), 10);
            assert_eq!(big.join().unwrap().unwrap(), 20);
            for h in smalls {
                assert_eq!(h.join().unwrap().unwrap(), 1);
            }
        });
        let added = recording.added.lock().unwrap();
        assert_eq!(added.len(), 10 + 20 + 12);
        // The large request never goes urgent, whatever room is left.
        assert!(
            added.iter().all(|(t, u)| !(t.starts_with('b') && *u)),
            "{added:?}"
        );
        // Small ones do, while the batch is busy, a quarter of the batch (8) at a time at most.
        let urgent: Vec<&str> = added
            .iter()
            .filter(|(_, u)| *u)
            .map(|(t, _)| t.as_str())
            .collect();
        assert!(!urgent.is_empty(), "{added:?}");
        assert!(urgent.iter().all(|t| t.starts_with('c')), "{urgent:?}");
        let most = recording.most_urgent.load(Ordering::SeqCst);
        assert!((1..=8).contains(&most), "{most} urgent at once");
    }
}
