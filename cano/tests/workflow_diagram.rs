//! Workflow diagrams: `to_mermaid` and `to_dot` draw every kind of state, declared
//! transitions and split joins, and escape labels.

use cano::prelude::*;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Fetch,
    Fanout,
    Reserve,
    Crunch,
    Wait,
    Approve,
    Named(&'static str),
    Done,
    Failed,
}

struct T;
#[task(state = S)]
impl T {
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(S::Done))
    }
}

struct Reserve;
#[saga::task(state = S)]
impl Reserve {
    type Output = ();
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, ()), CanoError> {
        Ok((TaskResult::Single(S::Done), ()))
    }
    async fn compensate(&self, _res: &Resources, _out: ()) -> Result<(), CanoError> {
        Ok(())
    }
}

struct Crunch;
#[task::stepped(state = S)]
impl Crunch {
    type Cursor = u32;
    async fn step(
        &self,
        _res: &Resources,
        _c: Option<u32>,
    ) -> Result<StepOutcome<u32, S>, CanoError> {
        Ok(StepOutcome::Done(TaskResult::Single(S::Done)))
    }
}

struct Nap;
#[task::timer(state = S)]
impl Nap {
    async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
        Ok(TimerOutcome::Duration(std::time::Duration::from_secs(1)))
    }
    async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(S::Done))
    }
}

struct Approve;
#[task::signal(state = S)]
impl Approve {
    type Payload = bool;
    fn signal(&self) -> Cow<'static, str> {
        "approval".into()
    }
    async fn on_signal(&self, _res: &Resources, _ok: bool) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(S::Done))
    }
}

fn workflow() -> Workflow<S> {
    Workflow::bare()
        .register(S::Fetch, T)
        .register_split(
            S::Fanout,
            vec![T, T, T],
            JoinConfig::new(JoinStrategy::Quorum(2), S::Reserve),
        )
        .register_with_compensation(S::Reserve, Reserve)
        .register_stepped(S::Crunch, Crunch)
        .register(S::Wait, Nap)
        .register_signal(S::Approve, Approve)
        .register(S::Named("say \"hi\""), T)
        .add_exit_states_from([S::Done, S::Failed])
        .with_signal_store(std::sync::Arc::new(cano::MemoryCheckpointStore::new()))
        .with_transitions(S::Fetch, [S::Fanout, S::Failed])
        .with_transitions(S::Fetch, [S::Fanout]) // declared twice, drawn once
        .with_transitions(S::Reserve, [S::Crunch])
        .with_transitions(S::Crunch, [S::Wait])
        .with_transitions(S::Wait, [S::Approve])
        .with_transitions(S::Approve, [S::Done, S::Failed])
}

#[test]
fn mermaid_draws_every_kind_of_state() {
    assert_eq!(
        workflow().to_mermaid(),
        "flowchart LR
    s0[\"Fetch\"]
    s1{{\"Fanout<br/><small>split: 3 tasks, quorum 2</small>\"}}
    s2[\"Reserve<br/><small>saga step</small>\"]
    s3[\"Crunch<br/><small>stepped</small>\"]
    s4[/\"Wait<br/><small>timer</small>\"/]
    s5[/\"Approve<br/><small>waits for #quot;approval#quot;</small>\"/]
    s6[\"Named(#quot;say \\#quot;hi\\#quot;#quot;)\"]
    s7([\"Done\"])
    s8([\"Failed\"])
    s0 --> s1
    s0 --> s8
    s2 --> s3
    s3 --> s4
    s4 --> s5
    s5 --> s7
    s5 --> s8
    s1 -- \"join\" --> s2
"
    );
}

#[test]
fn dot_draws_the_same_graph() {
    let dot = workflow().to_dot();
    assert!(
        dot.starts_with("digraph workflow {\n    rankdir=LR;\n"),
        "{dot}"
    );
    assert!(dot.ends_with("}\n"));
    for line in [
        "s1 [label=\"Fanout\\nsplit: 3 tasks, quorum 2\", shape=hexagon];",
        "s4 [label=\"Wait\\ntimer\", shape=parallelogram];",
        "s6 [label=\"Named(\\\"say \\\\\\\"hi\\\\\\\"\\\")\", shape=box];",
        "s8 [label=\"Failed\", shape=doublecircle];",
        "s0 -> s8;",
        "s1 -> s2 [label=\"join\"];",
    ] {
        assert!(dot.contains(line), "missing {line:?} in\n{dot}");
    }
    assert_eq!(dot.matches(" -> ").count(), 8);
}

#[test]
fn a_transition_to_an_unknown_state_fails_validation() {
    let wf = Workflow::bare()
        .register(S::Fetch, T)
        .add_exit_state(S::Done)
        .with_transitions(S::Fetch, [S::Crunch]);
    let err = wf.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "Configuration error: The declared transition Fetch -> Crunch names Crunch, which is \
         neither registered nor an exit state"
    );
}

#[test]
fn a_workflow_without_declared_transitions_draws_its_states() {
    let wf = Workflow::bare()
        .register(S::Fetch, T)
        .add_exit_state(S::Done);
    assert_eq!(
        wf.to_mermaid(),
        "flowchart LR\n    s0[\"Fetch\"]\n    s1([\"Done\"])\n"
    );
}
