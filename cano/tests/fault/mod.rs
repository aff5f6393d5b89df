//! [`FaultyStore`]: a [`CheckpointStore`] wrapper that fails, delays or panics on chosen
//! calls, and keeps a journal of every call it saw.
//!
//! ```ignore
//! let faulty = FaultyStore::new(Arc::new(RedbCheckpointStore::new(path)?));
//! // The third call of any kind fails without reaching the inner store.
//! faulty.inject(Trigger::call(2), Fault::fail("disk full"));
//! // Every append of run "slow" waits a minute (tokio time) before it is forwarded.
//! faulty.inject(Trigger::op(Op::Append).workflow("slow"), Fault::Delay(secs(60)));
//! // The second step-cursor row is written, then the store panics.
//! faulty.inject(Trigger::kind(RowKind::StepCursor).nth(1), Fault::panic_after("io"));
//! // Each call fails with probability 0.1, from seed 7; at most once.
//! faulty.inject(Trigger::random(7, 0.1).times(1), Fault::fail("flaky"));
//! ```
//!
//! A call is matched against the rules in the order they were injected; the first rule
//! that fires decides the call's fault. Filters of one trigger must all match; `nth`
//! counts the calls that matched the other filters, `random` draws once per such call.
//!
//! The inner store is called on tokio's blocking pool (`spawn_blocking` + `block_on`).
//! Under a paused clock (`start_paused = true`) that keeps tokio from auto-advancing
//! the clock while real disk I/O is in flight: otherwise a pending workflow timeout
//! would fire "instantly" every time the runtime waited for the redb writer thread.
//! A dropped call still finishes its inner write, exactly like a dropped redb append
//! (the request is already with the writer thread): [`FaultyStore::settle`] waits for
//! such writes before the test inspects the file.
#![allow(dead_code)]

use cano::prelude::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;
use tokio::sync::Notify;

/// Marker in the message of every injected panic (see [`quiet_injected_panics`]).
pub const PANIC_MARKER: &str = "injected panic";

/// A store operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Append,
    Load,
    Clear,
}

/// What happens to a call a rule fires on.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Return `Err(CheckpointStore(msg))`; the inner store is not called.
    Fail(String),
    /// Forward the call, then return `Err(CheckpointStore(msg))` anyway: the write is
    /// durable but the caller is told it failed (a lost acknowledgement).
    FailAfter(String),
    /// Sleep (tokio time), then forward the call.
    Delay(Duration),
    /// Forward the call, then sleep before answering (the write is durable while the
    /// caller still waits).
    DelayAfter(Duration),
    /// Panic with `"injected panic: {msg}"`; the inner store is not called.
    Panic(String),
    /// Forward the call, then panic with `"injected panic: {msg}"`.
    PanicAfter(String),
}

impl Fault {
    pub fn fail(msg: &str) -> Self {
        Self::Fail(msg.to_string())
    }
    pub fn fail_after(msg: &str) -> Self {
        Self::FailAfter(msg.to_string())
    }
    pub fn panic(msg: &str) -> Self {
        Self::Panic(msg.to_string())
    }
    pub fn panic_after(msg: &str) -> Self {
        Self::PanicAfter(msg.to_string())
    }

    /// Whether the caller gets no answer at all (the call unwinds).
    pub fn panics(&self) -> bool {
        matches!(self, Self::Panic(_) | Self::PanicAfter(_))
    }

    /// Whether the inner store is called.
    pub fn forwards(&self) -> bool {
        !matches!(self, Self::Fail(_) | Self::Panic(_))
    }
}

/// Which calls a rule applies to. Every filter that is set must match.
#[derive(Debug, Clone, Default)]
pub struct Trigger {
    call: Option<u64>,
    op: Option<Op>,
    workflow_id: Option<String>,
    kind: Option<RowKind>,
    sequence: Option<u64>,
    nth: Option<u64>,
    random: Option<(u64, f64)>,
    times: Option<u64>,
}

impl Trigger {
    /// Every call.
    pub fn any() -> Self {
        Self::default()
    }
    /// The call with this global index (0-based, counting every operation of every id).
    pub fn call(index: u64) -> Self {
        Self {
            call: Some(index),
            ..Self::default()
        }
    }
    /// Every call of this operation.
    pub fn op(op: Op) -> Self {
        Self {
            op: Some(op),
            ..Self::default()
        }
    }
    /// Every append of a row of this kind.
    pub fn kind(kind: RowKind) -> Self {
        Self::op(Op::Append).row_kind(kind)
    }
    /// Each matching call fires with `probability`, drawn from a generator seeded with `seed`.
    pub fn random(seed: u64, probability: f64) -> Self {
        Self {
            random: Some((seed, probability)),
            ..Self::default()
        }
    }
    /// Only calls of this operation.
    pub fn and_op(mut self, op: Op) -> Self {
        self.op = Some(op);
        self
    }
    /// Only calls for this workflow id.
    pub fn workflow(mut self, id: &str) -> Self {
        self.workflow_id = Some(id.to_string());
        self
    }
    /// Only appends of rows of this kind.
    pub fn row_kind(mut self, kind: RowKind) -> Self {
        self.op = Some(Op::Append);
        self.kind = Some(kind);
        self
    }
    /// Only appends of the row with this sequence.
    pub fn sequence(mut self, sequence: u64) -> Self {
        self.op = Some(Op::Append);
        self.sequence = Some(sequence);
        self
    }
    /// Only the `n`th (0-based) call that matches the other filters.
    pub fn nth(mut self, n: u64) -> Self {
        self.nth = Some(n);
        self
    }
    /// Fire at most `n` times.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    fn filters_match(&self, index: u64, op: Op, id: &str, row: Option<&CheckpointRow>) -> bool {
        self.call.is_none_or(|c| c == index)
            && self.op.is_none_or(|o| o == op)
            && self.workflow_id.as_deref().is_none_or(|w| w == id)
            && self.kind.is_none_or(|k| row.is_some_and(|r| r.kind == k))
            && self
                .sequence
                .is_none_or(|s| row.is_some_and(|r| r.sequence == s))
    }
}

/// A small, fast, seedable generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
    /// A random element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

struct Rule {
    trigger: Trigger,
    fault: Fault,
    seen: u64,
    fired: u64,
    rng: Option<Rng>,
}

/// What the caller of a call got.
#[derive(Debug, Clone, PartialEq)]
pub enum Returned {
    /// Nothing yet: still running, or the caller dropped the call.
    Pending,
    Ok,
    Err(String),
    Panicked,
}

/// One call seen by the wrapper.
#[derive(Debug, Clone)]
pub struct Call {
    /// Global index, in the order calls arrived.
    pub index: u64,
    pub op: Op,
    pub workflow_id: String,
    /// The row, for appends.
    pub row: Option<CheckpointRow>,
    /// The injected fault, if a rule fired.
    pub fault: Option<Fault>,
    /// What the inner store answered (`None`: not called, or not finished).
    pub inner: Option<Result<(), String>>,
    /// What the caller got.
    pub returned: Returned,
}

impl Call {
    /// The `Display` of the error the caller got, if any.
    pub fn error(&self) -> Option<&str> {
        match &self.returned {
            Returned::Err(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Default)]
struct State {
    next: u64,
    rules: Vec<Rule>,
    journal: Vec<Call>,
}

struct Shared {
    inner: Arc<dyn CheckpointStore>,
    state: Mutex<State>,
    in_flight: AtomicUsize,
    idle: Notify,
}

impl Shared {
    fn update(&self, index: u64, f: impl FnOnce(&mut Call)) {
        let mut state = self.state.lock().unwrap();
        let call = state
            .journal
            .iter_mut()
            .find(|c| c.index == index)
            .expect("journalled call");
        f(call);
    }
}

/// Decrements the in-flight count when an inner call ends (even by unwinding).
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.idle.notify_waiters();
    }
}

type Forward<T> = Box<
    dyn FnOnce(
            Arc<dyn CheckpointStore>,
        ) -> Pin<Box<dyn Future<Output = Result<T, CanoError>> + Send>>
        + Send,
>;

/// The fault-injecting wrapper. Cheap to clone (clones share rules and journal).
#[derive(Clone)]
pub struct FaultyStore {
    shared: Arc<Shared>,
}

impl FaultyStore {
    /// Wrap `inner`; no faults until [`inject`](Self::inject) is called.
    pub fn new(inner: Arc<dyn CheckpointStore>) -> Arc<Self> {
        Arc::new(Self {
            shared: Arc::new(Shared {
                inner,
                state: Mutex::new(State::default()),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        })
    }

    /// Add a rule (after the existing ones).
    pub fn inject(&self, trigger: Trigger, fault: Fault) {
        let rng = trigger.random.map(|(seed, _)| Rng::new(seed));
        self.shared.state.lock().unwrap().rules.push(Rule {
            trigger,
            fault,
            seen: 0,
            fired: 0,
            rng,
        });
    }

    /// Remove every rule: from now on every call is forwarded unchanged.
    pub fn disarm(&self) {
        self.shared.state.lock().unwrap().rules.clear();
    }

    /// Every call so far, in arrival order.
    pub fn journal(&self) -> Vec<Call> {
        self.shared.state.lock().unwrap().journal.clone()
    }

    /// The calls a fault was injected into.
    pub fn faulted(&self) -> Vec<Call> {
        self.journal()
            .into_iter()
            .filter(|c| c.fault.is_some())
            .collect()
    }

    /// Number of calls so far.
    pub fn calls(&self) -> u64 {
        self.shared.state.lock().unwrap().next
    }

    /// The rows the inner store accepted for `id` since its last successful clear, in
    /// the order they were accepted: what the file must hold.
    pub fn expected_rows(&self, id: &str) -> Vec<CheckpointRow> {
        let mut rows = Vec::new();
        for call in self.journal() {
            if call.workflow_id != id || call.inner != Some(Ok(())) {
                continue;
            }
            match call.op {
                Op::Append => rows.push(call.row.expect("append row")),
                Op::Clear => rows.clear(),
                Op::Load => {}
            }
        }
        rows
    }

    /// Wait until no inner call is running (dropped calls finish their writes).
    pub async fn settle(&self) {
        loop {
            let idle = self.shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.shared.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Register the call and pick its fault.
    fn begin(&self, op: Op, id: &str, row: Option<&CheckpointRow>) -> (u64, Option<Fault>) {
        let mut state = self.shared.state.lock().unwrap();
        let index = state.next;
        state.next += 1;
        let mut chosen = None;
        for rule in &mut state.rules {
            if rule.trigger.times.is_some_and(|t| rule.fired >= t)
                || !rule.trigger.filters_match(index, op, id, row)
            {
                continue;
            }
            let seen = rule.seen;
            rule.seen += 1;
            if rule.trigger.nth.is_some_and(|n| n != seen) {
                continue;
            }
            if let (Some((_, p)), Some(rng)) = (rule.trigger.random, rule.rng.as_mut())
                && !rng.chance(p)
            {
                continue;
            }
            rule.fired += 1;
            chosen = Some(rule.fault.clone());
            break;
        }
        state.journal.push(Call {
            index,
            op,
            workflow_id: id.to_string(),
            row: row.cloned(),
            fault: chosen.clone(),
            inner: None,
            returned: Returned::Pending,
        });
        (index, chosen)
    }

    /// Call the inner store on the blocking pool, journalling its answer.
    async fn forward<T: Send + 'static>(
        &self,
        index: u64,
        call: Forward<T>,
    ) -> Result<T, CanoError> {
        let shared = Arc::clone(&self.shared);
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(Arc::clone(&shared));
        let job = move || {
            let _guard = guard;
            let fut = call(Arc::clone(&shared.inner));
            let out = tokio::runtime::Handle::current().block_on(fut);
            let summary = out.as_ref().map(|_| ()).map_err(ToString::to_string);
            shared.update(index, |c| c.inner = Some(summary));
            out
        };
        match tokio::task::spawn_blocking(job).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(CanoError::checkpoint_store(format!(
                "fault wrapper: inner call lost: {e}"
            ))),
        }
    }

    /// Run one call through its fault (if any).
    async fn run<T: Send + 'static>(
        &self,
        index: u64,
        fault: Option<Fault>,
        call: Forward<T>,
    ) -> Result<T, CanoError> {
        let out = match &fault {
            None => self.forward(index, call).await,
            Some(Fault::Fail(msg)) => Err(CanoError::checkpoint_store(msg.clone())),
            Some(Fault::FailAfter(msg)) => match self.forward(index, call).await {
                Ok(_) => Err(CanoError::checkpoint_store(msg.clone())),
                Err(e) => Err(e),
            },
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(*d).await;
                self.forward(index, call).await
            }
            Some(Fault::DelayAfter(d)) => {
                let out = self.forward(index, call).await;
                tokio::time::sleep(*d).await;
                out
            }
            Some(Fault::Panic(msg)) => {
                self.shared
                    .update(index, |c| c.returned = Returned::Panicked);
                panic!("{PANIC_MARKER}: {msg}");
            }
            Some(Fault::PanicAfter(msg)) => {
                let _ = self.forward(index, call).await;
                self.shared
                    .update(index, |c| c.returned = Returned::Panicked);
                panic!("{PANIC_MARKER}: {msg}");
            }
        };
        let returned = match &out {
            Ok(_) => Returned::Ok,
            Err(e) => Returned::Err(e.to_string()),
        };
        self.shared.update(index, |c| c.returned = returned);
        out
    }
}

#[checkpoint_store]
impl CheckpointStore for FaultyStore {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        let (index, fault) = self.begin(Op::Append, workflow_id, Some(&row));
        let id = workflow_id.to_string();
        self.run(
            index,
            fault,
            Box::new(move |inner| Box::pin(async move { inner.append(&id, row).await })),
        )
        .await
    }

    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        let (index, fault) = self.begin(Op::Load, workflow_id, None);
        let id = workflow_id.to_string();
        self.run(
            index,
            fault,
            Box::new(move |inner| Box::pin(async move { inner.load_run(&id).await })),
        )
        .await
    }

    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        let (index, fault) = self.begin(Op::Clear, workflow_id, None);
        let id = workflow_id.to_string();
        self.run(
            index,
            fault,
            Box::new(move |inner| Box::pin(async move { inner.clear(&id).await })),
        )
        .await
    }
}

/// Keep injected panics (whose message contains [`PANIC_MARKER`]) out of the test
/// output; every other panic is still reported by the previous hook.
pub fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !text.contains(PANIC_MARKER) {
                previous(info);
            }
        }));
    });
}

/// The text of a panic payload.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic payload>".to_string())
}

/// Assert that `rows` are in strictly increasing sequence order. They are dense unless
/// an append failed: the engine never reuses a failed append's sequence (the row may have
/// been stored anyway), so such a failure leaves a gap.
pub fn assert_dense(rows: &[CheckpointRow], what: &str) {
    let seqs: Vec<u64> = rows.iter().map(|r| r.sequence).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "{what}: rows not in strictly increasing order: {seqs:?}"
    );
    if let Some(first) = seqs.first() {
        assert_eq!(*first, 0, "{what}: the log must start at sequence 0");
    }
}
