//! `cano graph`: a run's path as a Mermaid or DOT diagram.
//!
//! One node per state the run entered, in the order first entered (a state entered again
//! is the same node, labelled with its visit count, so loops show as edges back); one edge
//! per transition, labelled with the order in which the run took it (`1`, `2, 5` for an
//! edge taken twice). The state the run stopped in is outlined in red. A rollback is a
//! hexagon reached by a dashed red edge from the state that failed, followed by the saga
//! steps it undoes (last first), each with a dotted edge to the state whose step it
//! undoes, marked done or not done. The state it stopped in also says what it waits for
//! (a timer, a signal) or the step cursor it stopped at.

use crate::report::{PathRow, RunView, utc_text};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

/// The diagram language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    State,
    Rollback,
    Undo,
}

/// What an edge stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EdgeKind {
    /// A transition between states.
    Next,
    /// The failure that started a rollback.
    Failed,
    /// The order of a rollback's compensations.
    Undo,
    /// A compensation and the state whose step it undoes.
    Undoes,
}

#[derive(Debug)]
struct Node {
    id: String,
    lines: Vec<String>,
    kind: NodeKind,
}

impl Node {
    /// The node's lines, each escaped with `esc`, joined by `separator`.
    fn label(&self, esc: impl Fn(&str) -> String, separator: &str) -> String {
        let lines: Vec<String> = self.lines.iter().map(|l| esc(l)).collect();
        lines.join(separator)
    }
}

#[derive(Debug)]
struct Edge {
    from: String,
    to: String,
    label: String,
    kind: EdgeKind,
}

/// The latest rollback of a run's path.
#[derive(Debug)]
struct Rollback {
    /// Its node's label.
    cause: String,
    /// The steps it undoes (task ids, oldest first).
    steps: Vec<String>,
    /// The indexes in `steps` undone.
    done: BTreeSet<usize>,
    /// The state node the run failed in.
    failed_in: Option<usize>,
}

/// A run's path as nodes and edges, whatever the language.
#[derive(Debug, Default)]
struct Diagram {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    stopped: Option<String>,
}

/// Draw `run`'s `path` in `format`.
pub fn render(run: &RunView, path: &[PathRow], format: Format) -> String {
    let diagram = Diagram::of(run, path);
    match format {
        Format::Mermaid => diagram.mermaid(),
        Format::Dot => diagram.dot(&run.run_id),
    }
}

impl Diagram {
    fn of(run: &RunView, path: &[PathRow]) -> Self {
        let mut d = Diagram::default();
        let mut node_of: HashMap<String, usize> = HashMap::new();
        let mut visits: Vec<u64> = Vec::new();
        let mut resumed: Vec<u64> = Vec::new();
        let mut transitions: Vec<((usize, usize), Vec<usize>)> = Vec::new();
        let mut step_state: HashMap<String, usize> = HashMap::new();
        let mut current: Option<usize> = None;
        let mut taken = 0;
        let mut rollback: Option<Rollback> = None;
        let mut state_node =
            |d: &mut Diagram, state: &str, visits: &mut Vec<u64>, resumed: &mut Vec<u64>| {
                *node_of.entry(state.to_string()).or_insert_with(|| {
                    d.nodes.push(Node {
                        id: format!("s{}", d.nodes.len()),
                        lines: vec![state.to_string()],
                        kind: NodeKind::State,
                    });
                    visits.push(0);
                    resumed.push(0);
                    d.nodes.len() - 1
                })
            };
        for step in path {
            match step {
                PathRow::StateEntry {
                    state,
                    resumed: is_resumed,
                    ..
                } => {
                    let node = state_node(&mut d, state, &mut visits, &mut resumed);
                    if *is_resumed && current == Some(node) {
                        resumed[node] += 1;
                        continue;
                    }
                    if *is_resumed {
                        resumed[node] += 1;
                    } else {
                        visits[node] += 1;
                    }
                    if let Some(from) = current {
                        taken += 1;
                        match transitions.iter_mut().find(|(e, _)| *e == (from, node)) {
                            Some((_, order)) => order.push(taken),
                            None => transitions.push(((from, node), vec![taken])),
                        }
                    }
                    current = Some(node);
                }
                PathRow::Completion { state, task_id, .. } => {
                    let node = state_node(&mut d, state, &mut visits, &mut resumed);
                    step_state.insert(task_id.clone(), node);
                }
                PathRow::RollbackStarted {
                    category,
                    message,
                    steps,
                    ..
                } => {
                    rollback = Some(Rollback {
                        cause: format!("rollback after {category} error: {message}"),
                        steps: steps.clone(),
                        done: BTreeSet::new(),
                        failed_in: current,
                    });
                }
                PathRow::Compensated { index, .. } => {
                    if let Some(rollback) = &mut rollback {
                        rollback.done.insert(*index);
                    }
                }
                _ => {}
            }
        }
        for (i, node) in d.nodes.iter_mut().enumerate() {
            if visits[i] > 1 {
                node.lines[0] = format!("{} ×{}", node.lines[0], visits[i]);
            }
            if resumed[i] > 0 {
                node.lines.push(format!("resumed here ×{}", resumed[i]));
            }
        }
        for ((from, to), order) in transitions {
            let label = order
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            d.edges.push(Edge {
                from: d.nodes[from].id.clone(),
                to: d.nodes[to].id.clone(),
                label,
                kind: EdgeKind::Next,
            });
        }
        if let Some(node) = current {
            if let Some(wait) = wait_line(run) {
                d.nodes[node].lines.push(wait);
            }
            if let Some(PathRow::StepCursor { cursor, .. }) = path.last() {
                d.nodes[node].lines.push(format!("at step cursor {cursor}"));
            }
            d.stopped = Some(d.nodes[node].id.clone());
        }
        if let Some(Rollback {
            cause,
            steps,
            done,
            failed_in,
        }) = rollback
        {
            d.nodes.push(Node {
                id: "rollback".into(),
                lines: vec![cause],
                kind: NodeKind::Rollback,
            });
            if let Some(from) = failed_in {
                d.edges.push(Edge {
                    from: d.nodes[from].id.clone(),
                    to: "rollback".into(),
                    label: "failed".into(),
                    kind: EdgeKind::Failed,
                });
            }
            let mut previous = "rollback".to_string();
            for (index, task) in steps.iter().enumerate().rev() {
                let id = format!("undo{index}");
                let status = if done.contains(&index) {
                    "done"
                } else {
                    "not done"
                };
                d.nodes.push(Node {
                    id: id.clone(),
                    lines: vec![format!("undo {task}"), status.into()],
                    kind: NodeKind::Undo,
                });
                d.edges.push(Edge {
                    from: previous,
                    to: id.clone(),
                    label: String::new(),
                    kind: EdgeKind::Undo,
                });
                if let Some(&state) = step_state.get(task) {
                    d.edges.push(Edge {
                        from: id.clone(),
                        to: d.nodes[state].id.clone(),
                        label: "compensates".into(),
                        kind: EdgeKind::Undoes,
                    });
                }
                previous = id;
            }
            if run.compensations_left.is_some() {
                d.stopped = Some("rollback".into());
            }
        }
        d
    }

    fn mermaid(&self) -> String {
        let esc = |s: &str| {
            s.replace('"', "#quot;")
                .replace('<', "#lt;")
                .replace('>', "#gt;")
        };
        let mut out = String::from("flowchart TD\n");
        for n in &self.nodes {
            let label = n.label(esc, "<br/>");
            let _ = match n.kind {
                NodeKind::State => writeln!(out, "    {}[\"{label}\"]", n.id),
                NodeKind::Rollback => writeln!(out, "    {}{{{{\"{label}\"}}}}", n.id),
                NodeKind::Undo => writeln!(out, "    {}([\"{label}\"])", n.id),
            };
        }
        for e in &self.edges {
            let arrow = match e.kind {
                EdgeKind::Next => "-->",
                EdgeKind::Failed | EdgeKind::Undo => "-.->",
                EdgeKind::Undoes => "-.-",
            };
            if e.label.is_empty() {
                let _ = writeln!(out, "    {} {arrow} {}", e.from, e.to);
            } else {
                let _ = writeln!(
                    out,
                    "    {} {arrow}|\"{}\"| {}",
                    e.from,
                    esc(&e.label),
                    e.to
                );
            }
        }
        if let Some(stopped) = &self.stopped {
            out.push_str("    classDef stopped stroke:#d00,stroke-width:3px\n");
            let _ = writeln!(out, "    class {stopped} stopped");
        }
        out
    }

    fn dot(&self, run_id: &str) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = format!(
            "digraph \"{}\" {{\n    rankdir=TB;\n    node [shape=box, style=rounded];\n",
            esc(run_id)
        );
        for n in &self.nodes {
            let label = n.label(esc, "\\n");
            let mut attrs = format!("label=\"{label}\"");
            match n.kind {
                NodeKind::State => {}
                NodeKind::Rollback => attrs.push_str(", shape=hexagon, color=red"),
                NodeKind::Undo => attrs.push_str(", style=\"rounded,dashed\""),
            }
            if self.stopped.as_deref() == Some(n.id.as_str()) {
                attrs.push_str(", color=red, penwidth=3");
            }
            let _ = writeln!(out, "    {} [{attrs}];", n.id);
        }
        for e in &self.edges {
            let mut attrs = Vec::new();
            if !e.label.is_empty() {
                attrs.push(format!("label=\"{}\"", esc(&e.label)));
            }
            match e.kind {
                EdgeKind::Next => {}
                EdgeKind::Failed => attrs.push("style=dashed, color=red".into()),
                EdgeKind::Undo => attrs.push("style=dashed".into()),
                EdgeKind::Undoes => attrs.push("style=dotted, arrowhead=none".into()),
            }
            let attrs = if attrs.is_empty() {
                String::new()
            } else {
                format!(" [{}]", attrs.join(", "))
            };
            let _ = writeln!(out, "    {} -> {}{attrs};", e.from, e.to);
        }
        out.push_str("}\n");
        out
    }
}

/// What a waiting run waits for, for its node's label.
fn wait_line(run: &RunView) -> Option<String> {
    let until = run
        .deadline_ms
        .map_or_else(String::new, |d| format!(" until {}", utc_text(d)));
    match (&run.signal, run.deadline_ms) {
        (Some(signal), _) => Some(format!("waits for signal {signal}{until}")),
        (None, Some(_)) => Some(format!("timer{until}")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cano::CheckpointRow;

    fn run(rows: &[CheckpointRow]) -> (RunView, Vec<PathRow>) {
        let view = RunView::new(&cano::recovery::log::summarize("r", rows), false);
        (view, PathRow::decode("r", rows))
    }

    #[test]
    fn loops_are_edges_back_with_their_order() {
        let rows: Vec<CheckpointRow> = ["A", "B", "A", "B", "C"]
            .iter()
            .enumerate()
            .map(|(i, s)| CheckpointRow::new(i as u64, *s, "t"))
            .collect();
        let (view, path) = run(&rows);
        let m = render(&view, &path, Format::Mermaid);
        assert!(m.contains("s0[\"A ×2\"]"), "{m}");
        assert!(m.contains("s0 -->|\"1, 3\"| s1"), "{m}");
        assert!(m.contains("s1 -->|\"2\"| s0"), "{m}");
        assert!(m.contains("class s2 stopped"), "{m}");
        let d = render(&view, &path, Format::Dot);
        assert!(d.contains("s1 -> s0 [label=\"2\"];"), "{d}");
        assert!(
            d.contains("s2 [label=\"C\", color=red, penwidth=3];"),
            "{d}"
        );
    }

    #[test]
    fn labels_are_escaped() {
        let rows = [CheckpointRow::new(0, "Say(\"hi\")", "t")];
        let (view, path) = run(&rows);
        assert!(render(&view, &path, Format::Mermaid).contains("Say(#quot;hi#quot;)"));
        assert!(render(&view, &path, Format::Dot).contains("Say(\\\"hi\\\")"));
    }

    #[test]
    fn a_run_stopped_mid_way_in_a_stepped_state_shows_its_cursor() {
        let rows = [
            CheckpointRow::new(0, "Batches", "load"),
            CheckpointRow::new(1, "Batches", "load").with_cursor(b"4".to_vec()),
        ];
        let (view, path) = run(&rows);
        let m = render(&view, &path, Format::Mermaid);
        assert!(m.contains("s0[\"Batches<br/>at step cursor 4\"]"), "{m}");
    }
}
