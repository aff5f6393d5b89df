// `register_router` and `register_stepped` want their own kinds of task, not a plain one.
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
        .register_router(Step::Work, Work)
        .add_exit_state(Step::Done);
    let _ = Workflow::bare()
        .register_stepped(Step::Work, Work)
        .add_exit_state(Step::Done);
}
