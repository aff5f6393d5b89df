//! A workflow as a picture: its states, exit states and transitions as Mermaid or DOT.
//!
//! One walk over the workflow ([`Workflow::diagram`]) gives the nodes and edges; the two
//! renderers only spell them.

use super::Workflow;
use super::handler::Handler;
use super::join::JoinStrategy;
use std::fmt::{self, Write as _};
use std::hash::Hash;

/// A node of the diagram: a state's label and how it is drawn.
struct Node {
    label: String,
    /// What kind of state this is, shown under its name (`None` for a plain task).
    note: Option<String>,
    shape: Shape,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A state with a task.
    Task,
    /// A split state.
    Split,
    /// A state that waits (timer, signal).
    Wait,
    /// An exit state.
    Exit,
}

/// The nodes (registered states in registration order, then exit-only states) and the
/// edges (declared transitions, then split → join) of a workflow, by node index.
struct Diagram {
    nodes: Vec<Node>,
    edges: Vec<(usize, usize, Option<String>)>,
}

impl<TState, TResourceKey> Workflow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Declare that a run may move from `from` to each state of `to`, for
    /// [`to_mermaid`](Self::to_mermaid) and [`to_dot`](Self::to_dot) to draw.
    ///
    /// The engine does not enforce declared transitions (a task's `TaskResult` decides where
    /// a run goes); [`validate`](Self::validate) checks that they name states of the
    /// workflow. A split state's edge to its join state is drawn without declaring it.
    pub fn with_transitions(mut self, from: TState, to: impl IntoIterator<Item = TState>) -> Self {
        let declared = std::sync::Arc::make_mut(&mut self.transitions);
        for to in to {
            if !declared.iter().any(|(f, t)| *f == from && *t == to) {
                declared.push((from.clone(), to));
            }
        }
        self.edited()
    }

    /// Check that every declared transition names registered or exit states.
    pub(super) fn validate_transitions(&self) -> Result<(), crate::CanoError> {
        for (from, to) in self.transitions.iter() {
            for state in [from, to] {
                if !self.is_known(state) {
                    return Err(crate::CanoError::configuration(format!(
                        "The declared transition {from:?} -> {to:?} names {state:?}, which is \
                         neither registered nor an exit state"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The workflow as a [Mermaid](https://mermaid.js.org) flowchart: one node per
    /// registered state (its kind noted: split, saga step, stepped, timer, signal), exit
    /// states as rounded terminals, declared transitions
    /// ([`with_transitions`](Self::with_transitions)) and each split's edge to its join
    /// state. Paste it into a ```` ```mermaid ```` block of a README.
    ///
    /// ```
    /// use cano::prelude::*;
    /// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    /// enum S { Fetch, Fanout, Merge, Done }
    /// struct T;
    /// #[task(state = S)]
    /// impl T { async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> { Ok(TaskResult::Single(S::Done)) } }
    /// let wf = Workflow::bare()
    ///     .register(S::Fetch, T)
    ///     .register_split(S::Fanout, vec![T, T], JoinConfig::new(JoinStrategy::All, S::Merge))
    ///     .register(S::Merge, T)
    ///     .add_exit_state(S::Done)
    ///     .with_transitions(S::Fetch, [S::Fanout])
    ///     .with_transitions(S::Merge, [S::Done]);
    /// assert_eq!(wf.to_mermaid(), "\
    /// flowchart LR
    ///     s0[\"Fetch\"]
    ///     s1{{\"Fanout<br/><small>split: 2 tasks, all</small>\"}}
    ///     s2[\"Merge\"]
    ///     s3([\"Done\"])
    ///     s0 --> s1
    ///     s2 --> s3
    ///     s1 -- \"join\" --> s2
    /// ");
    /// ```
    pub fn to_mermaid(&self) -> String {
        let diagram = self.diagram();
        let mut out = String::from("flowchart LR\n");
        for (i, node) in diagram.nodes.iter().enumerate() {
            let text = match &node.note {
                Some(note) => format!("{}<br/><small>{}</small>", node.label, note),
                None => node.label.clone(),
            };
            let text = mermaid_text(&text);
            let _ = match node.shape {
                Shape::Task => writeln!(out, "    s{i}[\"{text}\"]"),
                Shape::Split => writeln!(out, "    s{i}{{{{\"{text}\"}}}}"),
                Shape::Wait => writeln!(out, "    s{i}[/\"{text}\"/]"),
                Shape::Exit => writeln!(out, "    s{i}([\"{text}\"])"),
            };
        }
        for (from, to, label) in &diagram.edges {
            let _ = match label {
                Some(label) => {
                    writeln!(out, "    s{from} -- \"{}\" --> s{to}", mermaid_text(label))
                }
                None => writeln!(out, "    s{from} --> s{to}"),
            };
        }
        out
    }

    /// The workflow as a [Graphviz](https://graphviz.org) DOT digraph, with the same
    /// nodes and edges as [`to_mermaid`](Self::to_mermaid): render it with
    /// `dot -Tsvg workflow.dot > workflow.svg`.
    ///
    /// ```
    /// use cano::prelude::*;
    /// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    /// enum S { Work, Done }
    /// struct T;
    /// #[task(state = S)]
    /// impl T { async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> { Ok(TaskResult::Single(S::Done)) } }
    /// let wf = Workflow::bare().register(S::Work, T).add_exit_state(S::Done)
    ///     .with_transitions(S::Work, [S::Done]);
    /// let dot = wf.to_dot();
    /// assert!(dot.starts_with("digraph workflow {"));
    /// assert!(dot.contains("s0 [label=\"Work\", shape=box];"));
    /// assert!(dot.contains("s1 [label=\"Done\", shape=doublecircle];"));
    /// assert!(dot.contains("s0 -> s1;"));
    /// ```
    pub fn to_dot(&self) -> String {
        let diagram = self.diagram();
        let mut out = String::from("digraph workflow {\n    rankdir=LR;\n");
        for (i, node) in diagram.nodes.iter().enumerate() {
            let text = match &node.note {
                Some(note) => format!("{}\\n{}", dot_text(&node.label), dot_text(note)),
                None => dot_text(&node.label),
            };
            let shape = match node.shape {
                Shape::Task => "box",
                Shape::Split => "hexagon",
                Shape::Wait => "parallelogram",
                Shape::Exit => "doublecircle",
            };
            let _ = writeln!(out, "    s{i} [label=\"{text}\", shape={shape}];");
        }
        for (from, to, label) in &diagram.edges {
            let _ = match label {
                Some(label) => {
                    writeln!(out, "    s{from} -> s{to} [label=\"{}\"];", dot_text(label))
                }
                None => writeln!(out, "    s{from} -> s{to};"),
            };
        }
        out.push_str("}\n");
        out
    }

    /// The nodes and edges both renderers draw.
    fn diagram(&self) -> Diagram {
        let mut states: Vec<&TState> = Vec::new();
        let mut nodes = Vec::new();
        for (state, label) in self.states.labelled_keys() {
            let (shape, note) = match self.states.get(state) {
                Some(handler) => describe(handler),
                None => (Shape::Task, None),
            };
            let shape = if self.exit_states.contains(state) {
                Shape::Exit
            } else {
                shape
            };
            states.push(state);
            nodes.push(Node {
                label: label.to_string(),
                note,
                shape,
            });
        }
        for (state, label) in self.exit_states.labelled_keys() {
            if !self.states.contains(state) {
                states.push(state);
                nodes.push(Node {
                    label: label.to_string(),
                    note: None,
                    shape: Shape::Exit,
                });
            }
        }
        let index = |s: &TState| states.iter().position(|x| *x == s);
        let mut edges = Vec::new();
        for (from, to) in self.transitions.iter() {
            if let (Some(f), Some(t)) = (index(from), index(to)) {
                edges.push((f, t, None));
            }
        }
        for (state, handler) in self.states.iter() {
            if let Handler::Split { join, .. } = handler
                && let (Some(f), Some(t)) = (index(state), index(&join.join_state))
                && !edges.iter().any(|(a, b, _)| (*a, *b) == (f, t))
            {
                edges.push((f, t, Some("join".to_string())));
            }
        }
        Diagram { nodes, edges }
    }
}

/// How a state's handler is drawn.
fn describe<S, K>(handler: &Handler<S, K>) -> (Shape, Option<String>)
where
    S: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    match handler {
        Handler::Task { .. } => (Shape::Task, None),
        Handler::Split { tasks, join, .. } => {
            let strategy = match join.strategy {
                JoinStrategy::All => "all".to_string(),
                JoinStrategy::Any => "any".to_string(),
                JoinStrategy::Quorum(n) => format!("quorum {n}"),
                JoinStrategy::Percentage(p) => format!("{}%", p * 100.0),
                JoinStrategy::PartialResults(n) => format!("first {n}"),
                JoinStrategy::PartialTimeout => "until timeout".to_string(),
            };
            let n = tasks.len();
            let noun = if n == 1 { "task" } else { "tasks" };
            (Shape::Split, Some(format!("split: {n} {noun}, {strategy}")))
        }
        Handler::Stepped { .. } => (Shape::Task, Some("stepped".into())),
        Handler::Stream { .. } => (Shape::Task, Some("stream".into())),
        Handler::Compensatable { .. } => (Shape::Task, Some("saga step".into())),
        Handler::Timer { .. } => (Shape::Wait, Some("timer".into())),
        Handler::Signal { task, .. } => {
            (Shape::Wait, Some(format!("waits for {:?}", task.signal())))
        }
    }
}

/// Text inside a Mermaid node or edge label: quotes become entities.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// Text inside a DOT string: backslashes and quotes escaped, line breaks as `\n`.
fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
