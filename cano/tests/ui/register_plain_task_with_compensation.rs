// A plain task has nothing to undo: `Workflow::register_with_compensation` wants a saga task.
use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Work,
    Done,
}

struct Work;

#[task(state = Step)]
impl Work {
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

fn main() {
    let _ = Workflow::bare()
        .register_with_compensation(Step::Work, Work)
        .add_exit_state(Step::Done);
}
